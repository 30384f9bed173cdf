/*
 * test_userdb.c - the SMTP credential store (userdb.c): scrypt PHC hashes
 * (round trip, known vectors, malformed strings, salts), generated
 * passwords, user name and identity validation, which identities allow
 * which sender, the libconfig file (round trip, mode, errors with line
 * numbers, change detection) and the last-used marks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#define _XOPEN_SOURCE_EXTENDED 1
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "strbuf.h"
#include "userdb.h"
#include "util.h"

#define TEST_TMPDIR_PREFIX "test_userdb"
#include "test_tmpdir.h"

static void
put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* ---- hashes -------------------------------------------------------- */

static void
test_hash_roundtrip(void **state)
{
	const char *pw = "correct horse battery staple";
	char *h;

	(void)state;
	h = userdb_hash_password(pw, strlen(pw));
	assert_non_null(h);
	/* 16-byte salt -> 22 chars, 32-byte hash -> 43 chars, no '=' */
	assert_int_equal(strncmp(h, "$scrypt$ln=14,r=8,p=1$", 22), 0);
	assert_int_equal(strlen(h), 22 + 22 + 1 + 43);
	assert_null(strchr(h + 22, '='));
	assert_int_equal(userdb_verify_password(h, pw, strlen(pw)), 1);
	assert_int_equal(userdb_verify_password(h, "correct horse battery "
	    "staplE", strlen(pw)), 0);
	assert_int_equal(userdb_verify_password(h, pw, strlen(pw) - 1), 0);
	assert_int_equal(userdb_verify_password(h, "", 0), 0);
	free(h);

	/* The empty password and bytes beyond a NUL are hashed as given. */
	h = userdb_hash_password("", 0);
	assert_non_null(h);
	assert_int_equal(userdb_verify_password(h, "", 0), 1);
	assert_int_equal(userdb_verify_password(h, "x", 1), 0);
	free(h);
	h = userdb_hash_password("a\0b", 3);
	assert_non_null(h);
	assert_int_equal(userdb_verify_password(h, "a\0b", 3), 1);
	assert_int_equal(userdb_verify_password(h, "a\0c", 3), 0);
	assert_int_equal(userdb_verify_password(h, "a", 1), 0);
	free(h);
}

/* Made with Python's hashlib.scrypt and base64 (padding stripped). */
static void
test_hash_known_vectors(void **state)
{
	(void)state;
	assert_int_equal(userdb_verify_password("$scrypt$ln=14,r=8,p=1$"
	    "MDEyMzQ1Njc4OWFiY2RlZg$"
	    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
	    "correct horse battery staple", 28), 1);
	assert_int_equal(userdb_verify_password("$scrypt$ln=14,r=8,p=1$"
	    "MDEyMzQ1Njc4OWFiY2RlZg$"
	    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
	    "correct horse battery stapler", 29), 0);
	/* other parameters, 8-byte salt, 20-byte hash */
	assert_int_equal(userdb_verify_password("$scrypt$ln=10,r=1,p=2$"
	    "c2FsdHNhbHQ$1yNXGFZqrQSOJcuyYcvZUBfMyGs", "pw", 2), 1);
	assert_int_equal(userdb_verify_password("$scrypt$ln=10,r=1,p=2$"
	    "c2FsdHNhbHQ$1yNXGFZqrQSOJcuyYcvZUBfMyGs", "pW", 2), 0);
}

static void
test_hash_malformed(void **state)
{
	static const char *bad[] = {
		"",
		"$scrypt$",
		"scrypt$ln=14,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
		"$argon2id$v=19$m=65536,t=3,p=4$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
		/* parameters out of range or badly written */
		"$scrypt$ln=9,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
		"$scrypt$ln=21,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
		"$scrypt$ln=14,r=0,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
		"$scrypt$ln=14,r=33,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
		"$scrypt$ln=14,r=8,p=0$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
		"$scrypt$ln=14,r=8,p=17$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
		"$scrypt$ln=014,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
		"$scrypt$ln=+14,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
		"$scrypt$ln=99999999999999999999,r=8,p=1$"
		    "MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
		"$scrypt$r=8,ln=14,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
		"$scrypt$ln=14,r=8$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
		/* within each range, but together over the memory bound */
		"$scrypt$ln=20,r=32,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
		/* salt / hash missing, empty, too short */
		"$scrypt$ln=14,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg",
		"$scrypt$ln=14,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$",
		"$scrypt$ln=14,r=8,p=1$$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
		"$scrypt$ln=14,r=8,p=1$MDEy$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
		"$scrypt$ln=14,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$tjK03tRvEjqC",
		/* bad base64: other characters, padding, length, stray bits */
		"$scrypt$ln=14,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKC!",
		"$scrypt$ln=14,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U-b9rIvfeBMKCc",
		"$scrypt$ln=14,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg==$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
		"$scrypt$ln=14,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc=",
		"$scrypt$ln=14,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKC",
		"$scrypt$ln=14,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCd",
		"$scrypt$ln=14,r=8,p=1$MDEyMzQ1 Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc",
		"$scrypt$ln=14,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc\n",
		"$scrypt$ln=14,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc$x",
		/* longer than the accepted maximum (64 bytes) */
		"$scrypt$ln=14,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"
		    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = userdb_verify_password(bad[i], "x", 1);

		if (r != -1)
			fail_msg("accepted malformed hash [%zu] %s -> %d", i,
			    bad[i], r);
	}
	assert_int_equal(userdb_verify_password(NULL, "x", 1), -1);
}

static void
test_salt_unique(void **state)
{
	char *h[8], salt[8][32];
	size_t i, j;

	(void)state;
	for (i = 0; i < 8; i++) {
		h[i] = userdb_hash_password("same", 4);
		assert_non_null(h[i]);
		/* the salt is the field after the parameters */
		assert_int_equal(sscanf(h[i], "$scrypt$ln=14,r=8,p=1$%31[^$]",
		    salt[i]), 1);
		assert_int_equal(strlen(salt[i]), 22);
	}
	for (i = 0; i < 8; i++)
		for (j = i + 1; j < 8; j++) {
			assert_string_not_equal(h[i], h[j]);
			assert_string_not_equal(salt[i], salt[j]);
		}
	assert_int_equal(userdb_verify_password(h[0], "same", 4), 1);
	assert_int_equal(userdb_verify_password(h[7], "same", 4), 1);
	for (i = 0; i < 8; i++)
		free(h[i]);
}

static void
test_generate_password(void **state)
{
	enum { N = 400 };
	static char pw[N][USERDB_PASSWORD_LEN + 1];
	int seen[256] = { 0 };
	char small[USERDB_PASSWORD_LEN];
	size_t i, j, distinct = 0;

	(void)state;
	for (i = 0; i < N; i++) {
		assert_int_equal(userdb_generate_password(pw[i],
		    sizeof(pw[i])), 0);
		assert_int_equal(strlen(pw[i]), USERDB_PASSWORD_LEN);
		for (j = 0; j < USERDB_PASSWORD_LEN; j++) {
			unsigned char c = (unsigned char)pw[i][j];

			assert_true((c >= 'A' && c <= 'Z') ||
			    (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'));
			seen[c]++;
		}
		for (j = 0; j < i; j++)
			assert_string_not_equal(pw[i], pw[j]);
	}
	/* 12800 draws from 62 letters: every one shows up, none dominates
	 * (expected 206 each; bounds far outside random variation). */
	for (i = 0; i < 256; i++) {
		if (seen[i] == 0)
			continue;
		distinct++;
		assert_in_range(seen[i], 100, 330);
	}
	assert_int_equal(distinct, 62);
	assert_int_equal(userdb_generate_password(small, sizeof(small)), -1);
}

/* ---- names and identities ------------------------------------------ */

static void
test_name_valid(void **state)
{
	static const struct {
		const char	*name;
		int		 ok;
	} t[] = {
		{ "alice", 1 },
		{ "Alice.Smith", 1 },
		{ "a", 1 },
		{ "app-1_x+tag@example.com", 1 },
		{ "AKIA0123456789", 1 },
		{ "a..b", 1 },
		{ "-dash", 1 },
		{ "", 0 },
		{ ".", 0 },
		{ "..", 0 },
		{ ".hidden", 0 },
		{ "a/b", 0 },
		{ "../etc", 0 },
		{ "a b", 0 },
		{ "a:b", 0 },
		{ "tab\t", 0 },
		{ "new\nline", 0 },
		{ "\xc3\xa9t\xc3\xa9", 0 },
		{ "quote\"", 0 },
	};
	char n64[65], n65[66];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *why = userdb_name_invalid(t[i].name);

		if ((why == NULL) != t[i].ok)
			fail_msg("name '%s': expected %s, got %s", t[i].name,
			    t[i].ok ? "valid" : "invalid", why ? why : "valid");
	}
	memset(n64, 'x', 64);
	n64[64] = '\0';
	memset(n65, 'x', 65);
	n65[65] = '\0';
	assert_null(userdb_name_invalid(n64));
	assert_non_null(userdb_name_invalid(n65));
	assert_non_null(userdb_name_invalid(NULL));
}

static void
test_identity_normalize(void **state)
{
	static const struct {
		const char	*in;
		const char	*out;		/* NULL = invalid */
	} t[] = {
		{ "example.com", "example.com" },
		{ "Example.COM", "example.com" },
		{ "mail-1.example.co.uk", "mail-1.example.co.uk" },
		{ "localhost", "localhost" },
		{ "LocalHost", "localhost" },
		{ ".example.com", ".example.com" },
		{ ".Sub.Example.com", ".sub.example.com" },
		{ "alice@example.com", "alice@example.com" },
		{ "Alice.Smith@Example.com", "alice.smith@example.com" },
		{ "a+tag@example.com", "a+tag@example.com" },
		{ "!#$%&'*+/=?^_`{|}~-@example.com",
		    "!#$%&'*+/=?^_`{|}~-@example.com" },
		{ "root@localhost", "root@localhost" },
		{ "", NULL },
		{ "com", NULL },		/* no dot */
		{ ".com", NULL },		/* wildcard over a TLD */
		{ ".", NULL },
		{ "..example.com", NULL },
		{ "example..com", NULL },
		{ "example.com.", NULL },
		{ "-example.com", NULL },
		{ "example-.com", NULL },
		{ "exa_mple.com", NULL },
		{ "exa mple.com", NULL },
		{ "*.example.com", NULL },
		{ "@example.com", NULL },
		{ "alice@", NULL },
		{ "alice@com", NULL },
		{ "a@b@example.com", NULL },
		{ ".alice@example.com", NULL },
		{ "alice.@example.com", NULL },
		{ "al..ice@example.com", NULL },
		{ "\"alice\"@example.com", NULL },
		{ "al ice@example.com", NULL },
		{ "alice@[192.0.2.1]", NULL },
		{ "alice@.example.com", NULL },
		{ "ex\xc3\xa4mple.com", NULL },
	};
	char out[512], lab63[128], lab64[128], loc64[128], loc65[128];
	char big[300], tiny[8];
	const char *why;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		why = userdb_identity_normalize(t[i].in, out, sizeof(out));
		if (t[i].out == NULL && why == NULL)
			fail_msg("identity '%s' accepted as '%s'", t[i].in,
			    out);
		if (t[i].out != NULL && why != NULL)
			fail_msg("identity '%s' refused: %s", t[i].in, why);
		if (t[i].out != NULL)
			assert_string_equal(out, t[i].out);
	}
	/* label and local-part lengths */
	snprintf(lab63, sizeof(lab63), "%.63s.example",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	snprintf(lab64, sizeof(lab64), "%.64s.example",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_null(userdb_identity_normalize(lab63, out, sizeof(out)));
	assert_non_null(userdb_identity_normalize(lab64, out, sizeof(out)));
	snprintf(loc64, sizeof(loc64), "%.64s@example.com",
	    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	snprintf(loc65, sizeof(loc65), "%.65s@example.com",
	    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	assert_null(userdb_identity_normalize(loc64, out, sizeof(out)));
	assert_non_null(userdb_identity_normalize(loc65, out, sizeof(out)));
	/* a domain of more than 255 characters */
	memset(big, 0, sizeof(big));
	for (i = 0; i < 260; i += 2)
		memcpy(big + i, "a.", 2);
	memcpy(big + 260, "com", 3);
	assert_non_null(userdb_identity_normalize(big, out, sizeof(out)));
	/* output buffer too small */
	assert_non_null(userdb_identity_normalize("example.com", tiny,
	    sizeof(tiny)));
	assert_non_null(userdb_identity_normalize(NULL, out, sizeof(out)));
}

static void
test_identity_allows(void **state)
{
	char *ids[] = { (char *)"example.com", (char *)".corp.example",
	    (char *)"bob@other.org", (char *)"localhost" };
	struct userdb_user u = { .name = (char *)"u", .identities = ids,
	    .nidentities = 4 };
	struct userdb_user none = { .name = (char *)"n" };
	static const struct {
		const char	*addr;
		int		 ok;
	} t[] = {
		{ "alice@example.com", 1 },
		{ "ALICE@EXAMPLE.COM", 1 },
		{ "\"a b\"@example.com", 1 },	/* quoted local part */
		{ "\"x@y\"@example.com", 1 },
		{ "alice@sub.example.com", 0 },	/* domain: exactly that */
		{ "alice@evilexample.com", 0 },	/* lookalike */
		{ "alice@example.com.evil", 0 },
		{ "alice@example.co", 0 },
		{ "a@mx.corp.example", 1 },	/* wildcard: subdomains */
		{ "a@a.b.corp.example", 1 },
		{ "a@MX.Corp.Example", 1 },
		{ "a@corp.example", 0 },	/* ... not the domain itself */
		{ "a@evilcorp.example", 0 },
		{ "a@xcorp.example", 0 },
		{ "bob@other.org", 1 },		/* address: that address */
		{ "Bob@Other.ORG", 1 },
		{ "bobby@other.org", 0 },
		{ "bo@other.org", 0 },
		{ "alice@other.org", 0 },
		{ "\"bob\"@other.org", 0 },	/* whole-string comparison */
		{ "x.bob@other.org", 0 },
		{ "root@localhost", 1 },
		{ "", 0 },			/* null sender */
		{ "example.com", 0 },
		{ "@example.com", 0 },
		{ "alice@", 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (userdb_identity_allows(&u, t[i].addr) != t[i].ok)
			fail_msg("'%s': expected %s", t[i].addr,
			    t[i].ok ? "allowed" : "refused");
	assert_int_equal(userdb_identity_allows(&none, "alice@example.com"), 0);
	assert_int_equal(userdb_identity_allows(&u, NULL), 0);
	assert_int_equal(userdb_identity_allows(NULL, "a@example.com"), 0);
}

static void
test_records(void **state)
{
	struct userdb db = { 0 };
	struct userdb_user *u;
	char name[32];
	size_t i;

	(void)state;
	assert_non_null(u = userdb_add(&db, "alice"));
	assert_null(userdb_add(&db, "alice"));
	assert_non_null(userdb_add(&db, "Alice"));	/* names are exact */
	assert_non_null(userdb_add(&db, "bob"));
	assert_int_equal(db.nusers, 3);
	u = userdb_find(&db, "alice");
	assert_non_null(u);
	assert_int_equal(userdb_identity_add(u, "example.com"), 0);
	assert_int_equal(userdb_identity_add(u, "EXAMPLE.com"), 1);
	assert_int_equal(userdb_identity_add(u, "a@example.org"), 0);
	assert_int_equal(u->nidentities, 2);
	assert_int_equal(userdb_identity_remove(u, "Example.COM"), 0);
	assert_int_equal(userdb_identity_remove(u, "example.com"), -1);
	assert_int_equal(u->nidentities, 1);
	assert_string_equal(u->identities[0], "a@example.org");
	for (i = 1; i < USERDB_MAX_IDENTITIES; i++) {
		snprintf(name, sizeof(name), "d%zu.example", i);
		assert_int_equal(userdb_identity_add(u, name), 0);
	}
	assert_int_equal(userdb_identity_add(u, "one-too-many.example"), -1);
	assert_int_equal(userdb_remove(&db, "Alice"), 0);
	assert_int_equal(userdb_remove(&db, "Alice"), -1);
	assert_null(userdb_find(&db, "Alice"));
	assert_non_null(userdb_find(&db, "alice"));
	assert_non_null(userdb_find(&db, "bob"));
	assert_null(userdb_find(&db, NULL));
	while (db.nusers < USERDB_MAX_USERS) {
		snprintf(name, sizeof(name), "u%zu", db.nusers);
		assert_non_null(userdb_add(&db, name));
	}
	assert_null(userdb_add(&db, "straw"));
	userdb_free(&db);
	assert_int_equal(db.nusers, 0);
	userdb_free(NULL);
}

/* ---- the file ------------------------------------------------------ */

static void
test_path(void **state)
{
	char *p = userdb_path("/var/lib/postern");

	(void)state;
	assert_string_equal(p, "/var/lib/postern/users");
	free(p);
}

static void
test_save_load_roundtrip(void **state)
{
	struct userdb db = { 0 }, back;
	struct userdb_user *u;
	char why[1024], *path, *h, *text;
	struct stat st;

	(void)state;
	path = userdb_path(tmpdir);
	/* missing file: an empty store */
	assert_int_equal(userdb_load(path, &back, why, sizeof(why)), 0);
	assert_int_equal(back.nusers, 0);
	userdb_free(&back);

	h = userdb_hash_password("pw-a", 4);
	u = userdb_add(&db, "alice");
	u->hash = h;
	u->created = 1763891029;
	userdb_identity_add(u, "example.com");
	userdb_identity_add(u, ".corp.example");
	userdb_identity_add(u, "bob@other.org");
	u->max_send_rate = 10;
	u->max_24_hour_send = 50000;
	u = userdb_add(&db, "svc+app@x");
	u->hash = userdb_hash_password("pw-b", 4);
	u->created = 4102444800LL;		/* past 2^31 */
	u->max_24_hour_send = 3000000000L;	/* past INT_MAX */
	umask(022);
	assert_int_equal(userdb_save(path, &db, why, sizeof(why)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	text = read_file(path, NULL, 1 << 20);
	assert_non_null(text);
	assert_non_null(strstr(text, h));
	assert_null(strstr(text, "pw-a"));
	free(text);

	assert_int_equal(userdb_load(path, &back, why, sizeof(why)), 0);
	assert_int_equal(back.nusers, 2);
	u = &back.users[0];
	assert_string_equal(u->name, "alice");
	assert_string_equal(u->hash, h);
	assert_int_equal(u->created, 1763891029);
	assert_int_equal(u->nidentities, 3);
	assert_string_equal(u->identities[0], "example.com");
	assert_string_equal(u->identities[1], ".corp.example");
	assert_string_equal(u->identities[2], "bob@other.org");
	assert_int_equal(u->max_send_rate, 10);
	assert_int_equal(u->max_24_hour_send, 50000);
	assert_int_equal(userdb_verify_password(u->hash, "pw-a", 4), 1);
	u = &back.users[1];
	assert_string_equal(u->name, "svc+app@x");
	assert_int_equal(u->created, 4102444800LL);
	assert_int_equal(u->nidentities, 0);
	assert_int_equal(u->max_send_rate, 0);
	assert_int_equal(u->max_24_hour_send, 3000000000L);
	assert_int_equal(userdb_verify_password(u->hash, "pw-b", 4), 1);
	assert_int_equal(back.ino, st.st_ino);
	assert_int_equal(back.size, st.st_size);
	userdb_free(&back);

	/* an empty store writes and reads back */
	userdb_free(&db);
	assert_int_equal(userdb_save(path, &db, why, sizeof(why)), 0);
	assert_int_equal(userdb_load(path, &back, why, sizeof(why)), 0);
	assert_int_equal(back.nusers, 0);
	userdb_free(&back);

	/* a directory that is not there: an error with the reason */
	free(path);
	path = userdb_path("/nonexistent/dir");
	assert_int_equal(userdb_save(path, &db, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "/nonexistent/dir/users"));
	free(path);
}

#define H "\"$scrypt$ln=14,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$" \
	"tjK03tRvEjqCcPwmgtddMkgjlXrk8U/b9rIvfeBMKCc\""

static void
test_load_errors(void **state)
{
	static const struct {
		const char	*text;
		int		 line;
		const char	*what;
	} t[] = {
		{ "users = (\n  { name = \"a\"; hash = " H "; }\n  "
		    "{ name = \"b\"; }\n);\n", 3, "syntax" },
		{ "users = ();\nextra = 1;\n", 2, "unknown key 'extra'" },
		{ "users = (\n{ name = \"a\";\n  hash = " H ";\n"
		    "  colour = \"red\"; }\n);\n", 4, "unknown key 'colour'" },
		{ "users = (\n{ name = \"a/b\"; hash = " H "; }\n);\n", 2,
		    "user name 'a/b'" },
		{ "users = (\n{ name = 5; hash = " H "; }\n);\n", 2,
		    "name must be a string" },
		{ "users = (\n{ name = \"a\"; hash = " H "; },\n\n"
		    "{ name = \"a\"; hash = " H "; }\n);\n", 4,
		    "'a' appears twice" },
		{ "users = (\n{ name = \"a\";\n\n hash = \"$scrypt$ln=14\"; "
		    "}\n);\n", 4, "not a scrypt hash" },
		{ "users = (\n{ name = \"a\"; hash = \"plaintext\"; }\n);\n",
		    2, "not a scrypt hash" },
		{ "users = (\n{ name = \"a\"; }\n);\n", 2, "no hash" },
		{ "users = (\n{ hash = " H "; }\n);\n", 2, "without name" },
		{ "users = (\n{ name = \"a\"; hash = " H ";\n  identities = "
		    "[ \"example.com\",\n \"bad..example\" ]; }\n);\n", 4,
		    "identity 'bad..example'" },
		{ "users = (\n{ name = \"a\"; hash = " H ";\n  identities = "
		    "[ \"example.com\", \"EXAMPLE.com\" ]; }\n);\n", 3,
		    "appears twice" },
		{ "users = (\n{ name = \"a\"; hash = " H ";\n\n"
		    "  max_send_rate = -1; }\n);\n", 4, "0 or more" },
		{ "users = (\n{ name = \"a\"; hash = " H ";\n"
		    "  max_24_hour_send = \"10\"; }\n);\n", 3, "whole number" },
		{ "users = (\n{ name = \"a\"; hash = " H ";\n"
		    "  created = -5; }\n);\n", 3, "created" },
		{ "users = (\n{ name = \"a\"; hash = " H ";\n"
		    "  identities = \"example.com\"; }\n);\n", 3,
		    "identities must be a list" },
		{ "users = { a = 1; };\n", 1, "users must be a list" },
		{ "users = ( \"alice\" );\n", 1, "each user is a group" },
	};
	struct userdb db;
	char why[1024], want[64], *path;
	size_t i;

	(void)state;
	path = userdb_path(tmpdir);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		put_file(path, t[i].text);
		if (userdb_load(path, &db, why, sizeof(why)) != -1)
			fail_msg("[%zu] %s: loaded", i, t[i].what);
		assert_int_equal(db.nusers, 0);
		snprintf(want, sizeof(want), "/users:%d: ", t[i].line);
		if (strncmp(why, path, strlen(path)) != 0 ||
		    strstr(why, want) == NULL ||
		    (strcmp(t[i].what, "syntax") != 0 &&
		    strstr(why, t[i].what) == NULL))
			fail_msg("[%zu] wanted line %d and '%s', got: %s", i,
			    t[i].line, t[i].what, why);
	}
	/* an empty file, comments only, and users = () are empty stores */
	put_file(path, "");
	assert_int_equal(userdb_load(path, &db, why, sizeof(why)), 0);
	assert_int_equal(db.nusers, 0);
	put_file(path, "# nothing yet\n");
	assert_int_equal(userdb_load(path, &db, why, sizeof(why)), 0);
	put_file(path, "users = ( );\n");
	assert_int_equal(userdb_load(path, &db, why, sizeof(why)), 0);
	/* hand-written with optional keys left out and mixed case */
	put_file(path, "users = ( { name = \"a\"; hash = " H ";\n"
	    "identities = [ \"Alice@Example.COM\" ]; } );\n");
	assert_int_equal(userdb_load(path, &db, why, sizeof(why)), 0);
	assert_int_equal(db.nusers, 1);
	assert_string_equal(db.users[0].identities[0], "alice@example.com");
	assert_int_equal(db.users[0].created, 0);
	userdb_free(&db);
	/* not a file */
	free(path);
	assert_int_equal(userdb_load(tmpdir, &db, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "not a regular file"));
}

static void
test_load_limits(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct userdb db;
	char why[1024], *path;
	int i;

	(void)state;
	path = userdb_path(tmpdir);
	strbuf_puts(&sb, "users = ( { name = \"a\"; hash = " H ";\n"
	    "identities = [\n");
	for (i = 0; i <= USERDB_MAX_IDENTITIES; i++)
		strbuf_printf(&sb, "%s\"d%d.example\"", i ? ", " : "", i);
	strbuf_puts(&sb, " ]; } );\n");
	put_file(path, sb.s);
	assert_int_equal(userdb_load(path, &db, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "more than 256 identities"));
	strbuf_reset(&sb);
	strbuf_puts(&sb, "users = (\n");
	for (i = 0; i <= USERDB_MAX_USERS; i++)
		strbuf_printf(&sb, "%s{ name = \"u%d\"; hash = " H "; }\n",
		    i ? "," : "", i);
	strbuf_puts(&sb, ");\n");
	put_file(path, sb.s);
	assert_int_equal(userdb_load(path, &db, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "more than 4096 users"));
	strbuf_free(&sb);
	free(path);
}

static void
test_changed(void **state)
{
	struct userdb db = { 0 }, cur;
	char why[1024], *path;

	(void)state;
	path = userdb_path(tmpdir);
	/* loaded while missing: unchanged until it appears */
	assert_int_equal(userdb_load(path, &cur, why, sizeof(why)), 0);
	assert_int_equal(userdb_changed(path, &cur), 0);
	userdb_add(&db, "alice")->hash = userdb_hash_password("x", 1);
	assert_int_equal(userdb_save(path, &db, why, sizeof(why)), 0);
	assert_int_equal(userdb_changed(path, &cur), 1);
	userdb_free(&cur);
	assert_int_equal(userdb_load(path, &cur, why, sizeof(why)), 0);
	assert_int_equal(userdb_changed(path, &cur), 0);
	assert_int_equal(userdb_changed(path, &cur), 0);
	/* the same content written again (rename: a new file) */
	assert_int_equal(userdb_save(path, &db, why, sizeof(why)), 0);
	assert_int_equal(userdb_changed(path, &cur), 1);
	userdb_free(&cur);
	assert_int_equal(userdb_load(path, &cur, why, sizeof(why)), 0);
	assert_int_equal(userdb_changed(path, &cur), 0);
	/* touched in place */
	{
		struct timespec ts[2] = { { 0, UTIME_OMIT }, { 12345, 0 } };

		assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
	}
	assert_int_equal(userdb_changed(path, &cur), 1);
	userdb_free(&cur);
	assert_int_equal(userdb_load(path, &cur, why, sizeof(why)), 0);
	/* removed */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(userdb_changed(path, &cur), 1);
	userdb_free(&cur);
	assert_int_equal(userdb_load(path, &cur, why, sizeof(why)), 0);
	assert_int_equal(cur.nusers, 0);
	assert_int_equal(userdb_changed(path, &cur), 0);
	userdb_free(&cur);
	/* a broken file is not re-read until it changes */
	put_file(path, "users = ( { name = \"a\"; } );\n");
	assert_int_equal(userdb_load(path, &cur, why, sizeof(why)), -1);
	assert_int_equal(cur.nusers, 0);
	assert_int_equal(userdb_changed(path, &cur), 0);
	assert_int_equal(userdb_save(path, &db, why, sizeof(why)), 0);
	assert_int_equal(userdb_changed(path, &cur), 1);
	userdb_free(&cur);
	userdb_free(&db);
	free(path);
}

static void
test_last_used(void **state)
{
	char dir[512];
	struct stat st;
	int64_t t, now;

	(void)state;
	assert_int_equal(userdb_last_used(tmpdir, "alice"), 0);
	now = (int64_t)time(NULL);
	assert_int_equal(userdb_touch_used(tmpdir, "alice"), 0);
	t = userdb_last_used(tmpdir, "alice");
	assert_true(t >= now - 1 && t <= now + 2);
	snprintf(dir, sizeof(dir), "%s/users.used", tmpdir);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	snprintf(dir, sizeof(dir), "%s/users.used/alice", tmpdir);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, 0);
	/* a second touch moves the time */
	{
		struct timespec ts[2] = { { 1000, 0 }, { 1000, 0 } };

		assert_int_equal(utimensat(AT_FDCWD, dir, ts, 0), 0);
	}
	assert_int_equal(userdb_last_used(tmpdir, "alice"), 1000);
	assert_int_equal(userdb_touch_used(tmpdir, "alice"), 0);
	assert_true(userdb_last_used(tmpdir, "alice") >= now - 1);
	assert_int_equal(userdb_last_used(tmpdir, "bob"), 0);
	userdb_forget_used(tmpdir, "alice");
	assert_int_equal(userdb_last_used(tmpdir, "alice"), 0);
	userdb_forget_used(tmpdir, "alice");		/* twice is fine */
	/* names that would escape the directory are refused */
	assert_int_equal(userdb_touch_used(tmpdir, "../x"), -1);
	assert_int_equal(userdb_touch_used(tmpdir, ".."), -1);
	assert_int_equal(userdb_last_used(tmpdir, "../users.used"), 0);
	/* data_dir missing: an error, not a crash */
	assert_int_equal(userdb_touch_used("/nonexistent/dir", "alice"), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_roundtrip),
		cmocka_unit_test(test_hash_known_vectors),
		cmocka_unit_test(test_hash_malformed),
		cmocka_unit_test(test_salt_unique),
		cmocka_unit_test(test_generate_password),
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_identity_normalize),
		cmocka_unit_test(test_identity_allows),
		cmocka_unit_test(test_records),
		cmocka_unit_test(test_path),
		cmocka_unit_test_setup_teardown(test_save_load_roundtrip,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_load_limits, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_changed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_last_used, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
