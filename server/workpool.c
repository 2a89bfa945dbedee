/* A fixed set of threads running queued jobs in order. The HTTP threads hand
 * them the requests that wait on the HSM or PostgreSQL, so that a TLS
 * handshake is never stuck behind somebody's database commit. */
#include <pthread.h>
#include <stdlib.h>
#include "workpool.h"

struct srv_workpool {
	struct srv_job *head, *tail;
	size_t queued, max_queued;
	bool stopping;
	unsigned n_threads;
	pthread_t *threads;
	pthread_mutex_t mu;
	pthread_cond_t work;
};

static void *worker_main(void *arg)
{
	struct srv_workpool *q = arg;

	for (;;) {
		struct srv_job *j;

		pthread_mutex_lock(&q->mu);
		while (q->head == NULL && !q->stopping)
			pthread_cond_wait(&q->work, &q->mu);
		if ((j = q->head) == NULL) { /* stopping, and nothing left to run */
			pthread_mutex_unlock(&q->mu);
			return NULL;
		}
		if ((q->head = j->next) == NULL)
			q->tail = NULL;
		q->queued--;
		pthread_mutex_unlock(&q->mu);
		j->run(j);
	}
}

srv_workpool *srv_workpool_start(unsigned n_threads, size_t max_queued)
{
	struct srv_workpool *q = calloc(1, sizeof(*q));

	if (q == NULL || (q->threads = calloc(n_threads, sizeof(pthread_t))) == NULL) {
		free(q);
		return NULL;
	}
	q->max_queued = max_queued;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->work, NULL);
	for (; q->n_threads < n_threads; q->n_threads++)
		if (pthread_create(&q->threads[q->n_threads], NULL, worker_main, q) != 0) {
			srv_workpool_stop(q);
			srv_workpool_free(q);
			return NULL;
		}
	return q;
}

bool srv_workpool_submit(srv_workpool *q, struct srv_job *j)
{
	bool ok;

	j->next = NULL;
	pthread_mutex_lock(&q->mu);
	ok = !q->stopping && q->queued < q->max_queued;
	if (ok) {
		if (q->tail != NULL)
			q->tail->next = j;
		else
			q->head = j;
		q->tail = j;
		q->queued++;
		pthread_cond_signal(&q->work);
	}
	pthread_mutex_unlock(&q->mu);
	return ok;
}

void srv_workpool_stop(srv_workpool *q)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	q->stopping = true;
	pthread_cond_broadcast(&q->work);
	pthread_mutex_unlock(&q->mu);
	for (unsigned i = 0; i < q->n_threads; i++)
		pthread_join(q->threads[i], NULL);
	q->n_threads = 0;
}

void srv_workpool_free(srv_workpool *q)
{
	if (q == NULL)
		return;
	srv_workpool_stop(q);
	pthread_cond_destroy(&q->work);
	pthread_mutex_destroy(&q->mu);
	free(q->threads);
	free(q);
}
