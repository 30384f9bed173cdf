/*
 * fuzz_smtp_cmd.c - libFuzzer target for smtp_cmd_parse and the argument
 * parsers it leads to (MAIL, RCPT, BDAT, HELO/EHLO).
 *
 * The input is one command line.  It is parsed as the server does (verb,
 * then the verb's argument parser) and, to reach deep parameter code
 * quickly, the whole input also goes to each argument parser directly.
 * Checks: args borrowed inside the line and trimmed; replies are static
 * one-line 5xx texts; parsed results respect their documented limits.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp_proto.h"
#include "fuzz_check.h"

static void
check_reply(const char *reply)
{
	CHECK(reply != NULL);
	CHECK(strlen(reply) > 10 && reply[0] == '5' && reply[3] == ' ');
	CHECK(strchr(reply, '\r') == NULL && strchr(reply, '\n') == NULL);
}

static void
check_mail(const char *a, size_t n)
{
	struct smtp_path path;
	struct smtp_mail_params mp;
	const char *reply = NULL;
	size_t i;

	if (smtp_mail_parse(a, n, &path, &mp, &reply) == -1) {
		check_reply(reply);
		return;
	}
	CHECK(reply == NULL);
	CHECK(strlen(path.addr) <= SMTP_ADDR_MAX);
	CHECK(!path.utf8 || mp.smtputf8);
	CHECK(strlen(mp.envid) <= 100);
	for (i = 0; mp.envid[i] != '\0'; i++)
		CHECK(mp.envid[i] > ' ' && mp.envid[i] < 127 &&
		    mp.envid[i] != '=');
	CHECK(mp.body >= SMTP_BODY_UNSET && mp.body <= SMTP_BODY_BINARYMIME);
	CHECK(mp.ret >= SMTP_RET_UNSET && mp.ret <= SMTP_RET_HDRS);
}

static void
check_rcpt(const char *a, size_t n)
{
	struct smtp_path path;
	struct smtp_rcpt_params rp;
	const char *reply = NULL;

	if (smtp_rcpt_parse(a, n, &path, &rp, &reply) == -1) {
		check_reply(reply);
		return;
	}
	CHECK(reply == NULL);
	CHECK(path.addr[0] != '\0');
	CHECK(strlen(rp.orcpt) < sizeof(rp.orcpt));
	CHECK(rp.notify == 0 || rp.notify == SMTP_NOTIFY_NEVER ||
	    (rp.notify & SMTP_NOTIFY_NEVER) == 0);
	CHECK((rp.notify & ~0xf) == 0);
	CHECK(rp.orcpt[0] == '\0' || strchr(rp.orcpt, ';') != NULL);
}

static void
check_bdat(const char *a, size_t n)
{
	const char *reply = NULL;
	uint64_t size;
	int last;

	if (smtp_bdat_parse(a, n, &size, &last, &reply) == -1) {
		check_reply(reply);
		return;
	}
	CHECK(size < UINT64_C(1) << 63);
	CHECK(last == 0 || last == 1);
}

static void
check_helo(const char *a, size_t n)
{
	size_t i, start = 0, end = n;

	if (smtp_helo_parse(a, n) == -1)
		return;
	while (start < end && a[start] == ' ')
		start++;
	while (end > start && a[end - 1] == ' ')
		end--;
	CHECK(end > start);
	for (i = start; i < end; i++)
		CHECK((unsigned char)a[i] > ' ' && a[i] != 127);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	struct smtp_cmd cmd;
	size_t i;

	if (smtp_cmd_parse(line, size, &cmd) == 0) {
		CHECK(cmd.verb >= SMTP_VERB_UNKNOWN &&
		    cmd.verb < SMTP_VERB_COUNT);
		CHECK(cmd.args != NULL);
		if (cmd.args_len > 0) {
			CHECK(cmd.args > line &&
			    cmd.args + cmd.args_len <= line + size);
			CHECK(cmd.args[0] != ' ' &&
			    cmd.args[cmd.args_len - 1] != ' ');
		}
		for (i = 0; i < size; i++)
			CHECK(line[i] != '\0' && line[i] != '\r' &&
			    line[i] != '\n');
		if (cmd.verb != SMTP_VERB_UNKNOWN)
			CHECK(strncasecmp(line, smtp_verb_name(cmd.verb),
			    strlen(smtp_verb_name(cmd.verb))) == 0);
		switch (cmd.verb) {
		case SMTP_VERB_MAIL:
			check_mail(cmd.args, cmd.args_len);
			break;
		case SMTP_VERB_RCPT:
			check_rcpt(cmd.args, cmd.args_len);
			break;
		case SMTP_VERB_BDAT:
			check_bdat(cmd.args, cmd.args_len);
			break;
		case SMTP_VERB_HELO:
		case SMTP_VERB_EHLO:
			check_helo(cmd.args, cmd.args_len);
			break;
		default:
			break;
		}
	} else
		CHECK(size == 0 || line[0] == ' ' ||
		    memchr(line, '\0', size) || memchr(line, '\r', size) ||
		    memchr(line, '\n', size));
	check_mail(line, size);
	check_rcpt(line, size);
	check_bdat(line, size);
	check_helo(line, size);
	return 0;
}
