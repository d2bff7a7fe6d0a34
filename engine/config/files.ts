/**
 * Reading the files a configuration names, bounded: the configuration itself, certificates,
 * keys and passwd-files. A path is opened without blocking (a FIFO cannot hang the loader),
 * must be a regular file, and is read only up to a limit.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { ParseFailure } from '../ip.js';

const MIB = 1024 * 1024;
export const describeSize = (bytes: number): string => (bytes >= MIB ? `${(bytes / MIB).toFixed(1)} MiB` : `${bytes} bytes`);

/** `path` as written in the configuration, resolved against the configuration file's directory. */
export function resolvePath(path: string, configFile: string): string {
  return isAbsolute(path) ? path : resolve(dirname(resolve(configFile)), path);
}

function errnoText(err: unknown): string {
  const errno = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
  if (errno === 'ENOENT') return 'the file does not exist';
  if (errno === 'EACCES' || errno === 'EPERM') return 'permission denied';
  return err instanceof Error ? err.message : String(err);
}

/**
 * The bytes of a regular file of at most `maxBytes` (`maxBytes` 0: only check that it can be
 * opened for reading), or why not.
 */
export function readBounded(path: string, maxBytes: number): Buffer | ParseFailure {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting forever.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    return { error: errnoText(err), fix: 'check the path and its permissions' };
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) return { error: 'it is a directory, not a file', fix: 'name the file itself' };
    if (!st.isFile()) {
      const kind = st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'something else';
      return { error: `it is ${kind}, not a regular file`, fix: 'name a regular file' };
    }
    if (st.size > maxBytes && maxBytes > 0) {
      return { error: `the file is ${describeSize(st.size)}, more than the limit of ${describeSize(maxBytes)}`, fix: 'name the right file, or make it smaller' };
    }
    // Read at most one byte past the size seen: the file may have grown since.
    const buf = Buffer.alloc(Math.min(st.size, maxBytes) + 1);
    let length = 0;
    for (let n = -1; n !== 0 && length < buf.length; length += n) n = readSync(fd, buf, length, buf.length - length, null);
    if (length === buf.length && maxBytes > 0) return { error: 'the file grew while being read', fix: 'try again once it is written' };
    return buf.subarray(0, length);
  } catch (err) {
    return { error: errnoText(err), fix: 'check the path and its permissions' };
  } finally {
    closeSync(fd);
  }
}
