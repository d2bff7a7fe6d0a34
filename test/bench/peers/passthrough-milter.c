/*
 * passthrough-milter: the benchmark's baseline (issue 6, `npm run bench:milter`). A libmilter
 * filter that receives every stage a policy milter receives (connect, helo, envelope, each
 * header, end of headers, body chunks, end of message) and answers SMFIS_CONTINUE to each; it
 * requests no actions and no protocol "skip"/"no reply" steps, so the MTA waits for one reply per
 * event exactly as it does for mta-policy. It decides nothing and keeps no per-connection state.
 *
 * Usage: passthrough-milter -p SOCKET [-t TIMEOUT_S] [-b BACKLOG]
 *   SOCKET is libmilter's spec: inet:PORT@127.0.0.1 or unix:/path (an old socket file is removed).
 * Stops on SIGTERM/SIGINT (libmilter's own signal thread ends smfi_main).
 *
 * Build: scripts/lib.sh ensure_passthrough_milter (gcc -O2 … -lmilter -pthread).
 */
#include <libmilter/mfapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static sfsistat on_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr) {
	(void)ctx; (void)host; (void)addr;
	return SMFIS_CONTINUE;
}

static sfsistat on_helo(SMFICTX *ctx, char *helo) {
	(void)ctx; (void)helo;
	return SMFIS_CONTINUE;
}

static sfsistat on_envfrom(SMFICTX *ctx, char **argv) {
	(void)ctx; (void)argv;
	return SMFIS_CONTINUE;
}

static sfsistat on_envrcpt(SMFICTX *ctx, char **argv) {
	(void)ctx; (void)argv;
	return SMFIS_CONTINUE;
}

static sfsistat on_header(SMFICTX *ctx, char *name, char *value) {
	(void)ctx; (void)name; (void)value;
	return SMFIS_CONTINUE;
}

static sfsistat on_eoh(SMFICTX *ctx) {
	(void)ctx;
	return SMFIS_CONTINUE;
}

static sfsistat on_body(SMFICTX *ctx, unsigned char *chunk, size_t len) {
	(void)ctx; (void)chunk; (void)len;
	return SMFIS_CONTINUE;
}

static sfsistat on_eom(SMFICTX *ctx) {
	(void)ctx;
	return SMFIS_CONTINUE; /* at end of message CONTINUE means accept */
}

static sfsistat on_abort(SMFICTX *ctx) {
	(void)ctx;
	return SMFIS_CONTINUE;
}

static sfsistat on_close(SMFICTX *ctx) {
	(void)ctx;
	return SMFIS_CONTINUE;
}

static struct smfiDesc filter = {
	"passthrough",   /* filter name */
	SMFI_VERSION,    /* version code */
	0,               /* flags: no modifications requested */
	on_connect,
	on_helo,
	on_envfrom,
	on_envrcpt,
	on_header,
	on_eoh,
	on_body,
	on_eom,
	on_abort,
	on_close,
	NULL,            /* unknown commands */
	NULL,            /* DATA */
	NULL,            /* negotiate: take libmilter's defaults */
};

static void usage(const char *prog) {
	fprintf(stderr, "usage: %s -p inet:PORT@HOST|unix:/path [-t timeout_s] [-b backlog]\n", prog);
	exit(2);
}

int main(int argc, char **argv) {
	const char *spec = NULL;
	int timeout = 30, backlog = 512, c;
	while ((c = getopt(argc, argv, "p:t:b:")) != -1) {
		switch (c) {
		case 'p': spec = optarg; break;
		case 't': timeout = atoi(optarg); break;
		case 'b': backlog = atoi(optarg); break;
		default: usage(argv[0]);
		}
	}
	if (spec == NULL || timeout <= 0 || backlog <= 0) usage(argv[0]);
	if (smfi_setconn((char *)spec) == MI_FAILURE) { fprintf(stderr, "smfi_setconn %s failed\n", spec); return 1; }
	if (smfi_settimeout(timeout) == MI_FAILURE) { fprintf(stderr, "smfi_settimeout failed\n"); return 1; }
	if (smfi_setbacklog(backlog) == MI_FAILURE) { fprintf(stderr, "smfi_setbacklog failed\n"); return 1; }
	if (smfi_register(filter) == MI_FAILURE) { fprintf(stderr, "smfi_register failed\n"); return 1; }
	umask(0); /* a unix socket must be connectable by Postfix's unprivileged smtpd */
	if (smfi_opensocket(1) == MI_FAILURE) { fprintf(stderr, "cannot listen on %s\n", spec); return 1; }
	fprintf(stderr, "passthrough-milter listening on %s\n", spec);
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
