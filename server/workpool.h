/* Private to mintcad: threads that run the requests which wait on the HSM or
 * PostgreSQL (server/workpool.c). */
#ifndef MINTCA_WORKPOOL_H
#define MINTCA_WORKPOOL_H

#include <stdbool.h>
#include <stddef.h>

typedef struct srv_workpool srv_workpool;

/* A job, owned by the caller until run() is called on a pool thread. */
struct srv_job {
	void (*run)(struct srv_job *j);
	struct srv_job *next; /* the queue's */
};

/* n_threads threads; at most max_queued jobs waiting. NULL on error. */
srv_workpool *srv_workpool_start(unsigned n_threads, size_t max_queued);
/* Queue j; false when the queue is full or the pool is stopping (j not run). */
bool srv_workpool_submit(srv_workpool *p, struct srv_job *j);
/* Refuse new jobs, run every queued one, join the threads. Submitting
 * stays safe (and fails) until srv_workpool_free(). Safe on NULL. */
void srv_workpool_stop(srv_workpool *p);
/* Stop (if not yet) and free. Safe on NULL. */
void srv_workpool_free(srv_workpool *p);

#endif
