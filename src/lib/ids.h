/*
 * ids.h - ICID, MID and DCID allocation: decimal, unique and increasing
 * across processes and restarts (postern-log(7)).
 *
 * The counters live in shared memory created before the workers fork, so
 * every process draws from the same sequence with an atomic add.  A ceiling
 * is persisted in data_dir/ids; the sequence never passes a ceiling that is
 * not yet on disk, and a restart starts at the stored ceiling.  So IDs jump
 * forward by at most IDS_BLOCK at a restart and are never reused.
 */
#ifndef POSTERN_IDS_H
#define POSTERN_IDS_H

#include <stdint.h>

enum id_kind { ID_ICID, ID_MID, ID_DCID, ID_KINDS };
#define IDS_BLOCK	10000

/* Map the shared counters and reserve the first block.  min_mid: IDs
 * below this are in use (from the spool).  0 or -1 with why. */
int	ids_open(const char *data_dir, uint64_t min_mid, char *why,
	    size_t whylen);
uint64_t ids_next(enum id_kind);

#endif
