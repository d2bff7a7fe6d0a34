import { describe, expect, it } from 'vitest';
import * as C from '../../adapters/milter/constants.js';
import { MilterProtocolError, MilterUsageError } from '../../adapters/milter/errors.js';
import { negotiate, optnegReply, type MilterNeeds, type Negotiated } from '../../adapters/milter/negotiate.js';
import { FULL_OFFER } from '../../adapters/milter/client.js';

/** The lists the enforcement layer will request (issue 6). */
const MACROS: MilterNeeds['macros'] = {
  connect: ['{daemon_addr}', '{daemon_port}', 'j', '_', '{client_addr}', '{client_port}'],
  helo: ['{tls_version}', '{cipher}', '{cipher_bits}', '{cert_subject}', '{cert_issuer}', '{verify}'],
  mail: ['{auth_type}', '{auth_authen}', '{auth_author}', '{mail_addr}'],
  rcpt: ['{rcpt_addr}'],
  eoh: ['i'],
  eom: ['i'],
};

function ok(r: Negotiated | MilterProtocolError): Negotiated {
  if (r instanceof MilterProtocolError) throw r;
  return r;
}

describe('negotiate', () => {
  it('answers the Postfix/Sendmail offer with exactly what we need, macro lists included', () => {
    const n = ok(negotiate(FULL_OFFER, { requiredActions: C.SMFIF_ADDHDRS | C.SMFIF_CHGHDRS, optionalActions: C.SMFIF_QUARANTINE, macros: MACROS }));
    expect(n.version).toBe(6);
    expect(n.actions).toBe(C.SMFIF_ADDHDRS | C.SMFIF_CHGHDRS | C.SMFIF_QUARANTINE | C.SMFIF_SETSYMLIST);
    expect(n.protocol).toBe(C.SMFIP_SKIP);
    expect(n.macroListsSent).toBe(true);
    expect(optnegReply(n)).toEqual({
      kind: 'optneg',
      version: 6,
      actions: 0x131,
      protocol: 0x400,
      macros: [
        [C.SMFIM_CONNECT, '{daemon_addr} {daemon_port} j _ {client_addr} {client_port}'],
        [C.SMFIM_HELO, '{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer} {verify}'],
        [C.SMFIM_ENVFROM, '{auth_type} {auth_authen} {auth_author} {mail_addr}'],
        [C.SMFIM_ENVRCPT, '{rcpt_addr}'],
        [C.SMFIM_EOH, 'i'],
        [C.SMFIM_EOM, 'i'],
      ],
    });
    for (const ev of ['connect', 'helo', 'mail', 'rcpt', 'data', 'header', 'eoh', 'body', 'unknown'] as const) expect(n.noReply.has(ev)).toBe(false);
  });

  it('switches unwanted events off and asks for no reply where allowed (NO*, NR_*)', () => {
    const n = ok(negotiate(FULL_OFFER, { events: ['connect', 'helo', 'mail', 'rcpt', 'header', 'eoh'], noReply: ['header', 'helo'], skip: false }));
    expect(n.protocol).toBe(C.SMFIP_NOBODY | C.SMFIP_NODATA | C.SMFIP_NOUNKNOWN | C.SMFIP_NR_HDR | C.SMFIP_NR_HELO);
    expect([...n.suppressed].sort()).toEqual(['body', 'data', 'unknown']);
    expect([...n.noReply].sort()).toEqual(['header', 'helo']);
  });

  it('only uses bits the MTA offered, and fakes the rest (the session answers/suppresses)', () => {
    const offer = { version: 6, actions: C.SMFIF_ADDHDRS, protocol: C.SMFIP_NOBODY | C.SMFIP_NR_RCPT };
    const n = ok(negotiate(offer, { events: ['connect', 'rcpt', 'eoh'], noReply: ['rcpt', 'connect'], optionalActions: C.SMFIF_ADDHDRS | C.SMFIF_CHGHDRS, macros: MACROS }));
    expect(n.protocol).toBe(C.SMFIP_NOBODY | C.SMFIP_NR_RCPT);
    expect(n.protocol & ~offer.protocol).toBe(0);
    expect(n.actions).toBe(C.SMFIF_ADDHDRS);
    expect(n.wanted.has('helo')).toBe(false);
    expect(n.suppressed.has('helo')).toBe(false); // not offered: the MTA still sends HELO; the session answers it
    expect(n.noReply.has('connect')).toBe(false); // not offered: CONNECT still gets a reply
    expect(n.macroListsSent).toBe(false);
    expect(optnegReply(n)).toMatchObject({ macros: [] });
    expect(n.skip).toBe(false);
  });

  it('answers min(6, offered) to a newer MTA', () => {
    expect(ok(negotiate({ ...FULL_OFFER, version: 7 })).version).toBe(6);
  });

  it.each([2, 3, 4, 5])('refuses protocol version %i with a clear error', (version) => {
    const r = negotiate({ ...FULL_OFFER, version });
    expect(r).toBeInstanceOf(MilterProtocolError);
    expect((r as MilterProtocolError).code).toBe('MILTER_NEGOTIATION');
    expect((r as MilterProtocolError).message).toContain('milter_protocol = 6');
  });

  it('fails closed when a required action is missing, naming it', () => {
    const r = negotiate({ ...FULL_OFFER, actions: C.SMFIF_ADDHDRS }, { requiredActions: C.SMFIF_ADDHDRS | C.SMFIF_CHGHDRS });
    expect(r).toBeInstanceOf(MilterProtocolError);
    expect((r as Error).message).toContain('SMFIF_CHGHDRS');
  });

  it('can require macro lists', () => {
    const r = negotiate({ ...FULL_OFFER, actions: C.SMFIF_ADDHDRS }, { macros: MACROS, requireMacroLists: true });
    expect((r as MilterProtocolError).code).toBe('MILTER_NEGOTIATION');
  });

  it('reads an offer of 0 as the version 1 sets (libmilter)', () => {
    const n = ok(negotiate({ version: 6, actions: 0, protocol: 0 }, { optionalActions: C.SMFI_CURR_ACTS }));
    expect(n.actions).toBe(C.SMFI_V1_ACTS);
  });

  it('echoes Sendmail MDS sizes only when the frame limit allows them', () => {
    const offer = { ...FULL_OFFER, protocol: FULL_OFFER.protocol | C.SMFIP_MDS_1M };
    expect(ok(negotiate(offer)).protocol & C.SMFIP_MDS_1M).toBe(C.SMFIP_MDS_1M);
    expect(ok(negotiate(offer, {}, 300 * 1024)).protocol & C.SMFI_INTERNAL).toBe(0);
    const k256 = { ...FULL_OFFER, protocol: FULL_OFFER.protocol | C.SMFIP_MDS_256K };
    expect(ok(negotiate(k256, {}, 300 * 1024)).maxDataSize).toBe(C.MILTER_MDS_256K);
  });

  it('requests HDR_LEADSPC and RCPT_REJ only when asked', () => {
    expect(ok(negotiate(FULL_OFFER)).protocol & (C.SMFIP_HDR_LEADSPC | C.SMFIP_RCPT_REJ)).toBe(0);
    const n = ok(negotiate(FULL_OFFER, { headerLeadingSpace: true, rejectedRecipients: true }));
    expect(n.protocol & (C.SMFIP_HDR_LEADSPC | C.SMFIP_RCPT_REJ)).toBe(C.SMFIP_HDR_LEADSPC | C.SMFIP_RCPT_REJ);
  });

  it('refuses malformed macro names (a programming error)', () => {
    expect(() => negotiate(FULL_OFFER, { macros: { connect: ['{bad name}'] } })).toThrow(MilterUsageError);
    expect(() => negotiate(FULL_OFFER, { macros: { connect: ['daemon_addr'] } })).toThrow(MilterUsageError);
  });
});
