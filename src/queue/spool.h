/*
 * spool.h - the durable message spool (layout in docs/spool.md).
 *
 * Writers (SMTP workers) stream a message into spool/incoming/<MID>, then
 * spool_msg_commit() appends the envelope and a checksummed footer and hands
 * the file to the group-commit thread, which renames a whole batch into
 * spool/queue/ and makes it durable with one syncfs(2); only then is the
 * caller's callback run (in the event loop thread) so it may answer 250.
 * spool_inject() writes a message made locally (bounce, alert) the same
 * way, synchronously.
 *
 * Readers (queue manager, `postern queue`) list, open, verify, move and
 * delete spool files, and keep per-recipient delivery state in
 * spool/state/<MID>.
 *
 * The queue manager may replace a queued message once with transformed
 * content (transform.h): spool_rewrite_*() write the new file in
 * incoming/, and only once a whole batch is flushed rename each over
 * queue/<MID>, so a crash leaves the old or the new file, never a half.
 *
 * SMTP workers ask spool_has_room() at MAIL (a cached statvfs) so that a
 * full file system gets 452 4.3.1 before the client sends its message.
 */
#ifndef POSTERN_SPOOL_H
#define POSTERN_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "envelope.h"

struct event_base;
struct spool;
struct spool_msg;

enum spool_area { SPOOL_INCOMING, SPOOL_QUEUE, SPOOL_HOLD, SPOOL_CORRUPT };

/* Open (creating if needed) data_dir/spool.  NULL with why on failure. */
struct spool *spool_open(const char *data_dir, char *why, size_t whylen);
void	spool_free(struct spool *);
/* Start the group-commit thread, reporting to `base`.  0 or -1. */
int	spool_attach_loop(struct spool *, struct event_base *base);
/* Path of a message file in an area. */
void	spool_path(const struct spool *, enum spool_area, uint64_t mid,
	    char *buf, size_t len);
const char *spool_data_dir(const struct spool *);

/* --- writing --- */
struct spool_msg *spool_msg_new(struct spool *, uint64_t mid, char *why,
	    size_t whylen);
/* Buffered append of message content.  -1 after any I/O error (sticky). */
int	spool_msg_write(struct spool_msg *, const void *, size_t);
/* Drop an unfinished message (unlinks the file, frees); NULL is fine. */
void	spool_msg_abort(struct spool_msg *);
/* ok = 1: durable in spool/queue; ok = 0: failed, nothing kept. */
typedef void (*spool_commit_cb)(void *arg, uint64_t mid, int ok);
/* Finish and commit; `msg` is owned by the spool from here on. */
void	spool_msg_commit(struct spool_msg *, const struct envelope *,
	    spool_commit_cb, void *arg);
/*
 * Write a whole message (content `data`, len octets, with CRLF line ends)
 * into spool/queue synchronously and durably, as if it had been received
 * and committed: same file format, file fsync, rename from incoming/,
 * fsync of both directories, all before returning.  For messages the
 * queue manager makes itself (bounces, alerts: see bounce.h).  env->mid must
 * be set (ids_next(ID_MID)) and unused; env->msg_size is set to len here.
 * No state file is written (all recipients pending, due now); the caller
 * schedules it (a queue manager also finds it at its next rescan).  Does
 * not use the commit thread.  0, or -1 with why (nothing is left behind).
 */
int	spool_inject(struct spool *, struct envelope *env, const char *data,
	    size_t len, char *why, size_t whylen);

/* --- free space (SMTP workers, at MAIL) --- */
enum spool_room {
	SPOOL_ROOM_OK,		/* room for the message and the reserve */
	SPOOL_ROOM_FULL,	/* free space (or inodes) below the reserve */
	SPOOL_ROOM_SIZE		/* above the reserve, but not for SIZE octets */
};
#define SPOOL_SPACE_TTL		1.0	/* seconds a statvfs result is used */
#define SPOOL_MIN_INODES	100	/* free inodes kept, where counted */
/*
 * Is there room in the spool's file system for a message of `size`
 * octets (0 = not declared) while `reserve` octets stay free
 * (limits.spool_min_free)?  The statvfs(2) result is kept for
 * SPOOL_SPACE_TTL seconds of `now` (monotonic), so a busy worker asks the
 * kernel about once a second.  When statvfs itself fails the answer is
 * OK: the end-of-data commit still refuses what cannot be stored.  The
 * first FULL after room (and the first room after FULL) is logged once,
 * not per MAIL.
 */
enum spool_room spool_has_room(struct spool *, uint64_t size,
	    uint64_t reserve, double now);

/* --- rewriting a queued message (transform.c) --- */
/*
 * Start the replacement of queue/<mid>: a new file incoming/<mid>, open
 * for reading and writing and locked with flock(2) (the lock stays on it
 * under its new name).  Write the content with spool_msg_write().  NULL
 * with why on failure.
 */
struct spool_msg *spool_rewrite_new(struct spool *, uint64_t mid,
	    char *why, size_t whylen);
/* Append envelope and footer (env->msg_size must be the content written);
 * not yet durable.  0, or -1 with why (then spool_msg_abort() it). */
int	spool_rewrite_finish(struct spool_msg *, const struct envelope *env,
	    char *why, size_t whylen);
/*
 * Make finished rewrites durable and put each in place of its
 * queue/<MID>: one syncfs(2) for the data of all of them, a rename each,
 * one fsync of queue/.  Then take each result with spool_rewrite_result().
 */
void	spool_rewrite_commit(struct spool *, struct spool_msg **msgs,
	    size_t n);
/*
 * Result of a committed rewrite; frees `msg`.  1: queue/<MID> is the new
 * file, durable, and *fd its locked read-write descriptor at offset 0
 * (the caller closes it).  0: the same, but flushing queue/ failed (why):
 * a crash could still bring the old file back, so the message must wait
 * for a later attempt.  -1 with why: nothing was replaced (the old file
 * is whole and in place) and *fd is untouched.
 */
int	spool_rewrite_result(struct spool_msg *, int *fd, char *why,
	    size_t whylen);

/* --- reading --- */
/* Message IDs in an area, sorted ascending (malloc'd array). */
int	spool_list(const struct spool *, enum spool_area, uint64_t **mids,
	    size_t *n);
/*
 * Open a spool file: decodes the envelope, returns an fd positioned at 0
 * (content is the first env->msg_size octets).  verify = 1 also checks the
 * content checksum (reads the whole file).  -1 with why on failure;
 * errno ENOENT when the file is gone.
 */
int	spool_open_msg(const struct spool *, enum spool_area, uint64_t mid,
	    int verify, struct envelope *, char *why, size_t whylen);
/* Move a message between areas (rename + dir fsync). 0 or -1 (errno). */
int	spool_move(const struct spool *, uint64_t mid, enum spool_area from,
	    enum spool_area to);
/* Remove a message and its state (unlink; durable later). 0 or -1. */
int	spool_remove(const struct spool *, enum spool_area, uint64_t mid);
/* Where is it?  Returns the area, or -1 when unknown. */
int	spool_find(const struct spool *, uint64_t mid);
/* Highest MID present anywhere in the spool (for ID recovery). */
uint64_t spool_max_mid(const struct spool *);
/* Delete leftovers of interrupted receptions in incoming/. */
void	spool_clean_incoming(const struct spool *);

/* --- per-recipient delivery state --- */
enum rcpt_status { RCPT_PENDING, RCPT_DELIVERED, RCPT_FAILED };
struct rcpt_state {
	enum rcpt_status status;
	int	 attempts;
	int64_t	 next_attempt;		/* wall clock; 0 = now */
	char	 last_error[512];
	/* the cause of last_error by its name in the table of causes
	 * (failcause_name: "tls-untrusted"), "" when not known, and the
	 * server it is about; `postern queue show` prints its fix */
	char	 cause[40];
	char	 cause_host[256];
	int	 cause_port;
};
/* Read state for n recipients (missing file = all pending). 0 or -1. */
int	spool_state_read(const struct spool *, uint64_t mid,
	    struct rcpt_state *, size_t n);
/* Write state atomically (tmp, fsync, rename).  0 or -1. */
int	spool_state_write(const struct spool *, uint64_t mid,
	    const struct rcpt_state *, size_t n);

/* Runtime pause flag (`postern queue pause/resume`). */
int	spool_paused(const struct spool *);
int	spool_set_paused(const struct spool *, int on);

#endif
