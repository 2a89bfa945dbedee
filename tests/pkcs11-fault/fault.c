/* pkcs11-fault.so: a PKCS#11 module for tests that sits between mintcad and
 * a real module (MINTCA_FAULT_MODULE, default SoftHSM2) and forwards every
 * call, except that it injects the fault named in a control file
 * (MINTCA_FAULT_CTL) into the calls a signer makes on a token. The file holds
 * one command:
 *
 *   session_invalid N   the token forgets its sessions, as after an HSM
 *                       restart (the real module's C_CloseAllSessions, which
 *                       also logs out), and the next N calls that use a
 *                       session answer CKR_SESSION_HANDLE_INVALID
 *   device_error N      the next N calls answer CKR_DEVICE_ERROR
 *   stall N S           the next N calls sleep S seconds, then go through
 *   none                (or no file) no fault
 *
 * The calls counted: C_OpenSession (not for session_invalid), C_Login,
 * C_FindObjectsInit, C_FindObjects, C_GetAttributeValue, C_SignInit, C_Sign.
 * After each injection the file is rewritten with the count left ("none" at
 * zero), so the state survives the module being unloaded and loaded again,
 * and a test can wait for a fault to be used up. A test replaces the file
 * atomically (write, then mv). MINTCA_FAULT_LOG, when set, receives one line per
 * injection ("device_error C_SignInit"). */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
/* Last: in its compatibility mode this header #defines common words. */
#include <p11-kit/pkcs11.h>

#define DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define EXPORT __attribute__((visibility("default")))

enum mode { M_NONE, M_SESSION_INVALID, M_DEVICE_ERROR, M_STALL };

struct fault {
	enum mode mode;
	unsigned long left;   /* calls still to fault */
	unsigned long stall_s;
};

static void *real_so;
static CK_FUNCTION_LIST *real;
static CK_FUNCTION_LIST ours;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static int parse(const char *line, struct fault *f)
{
	char word[32];
	unsigned long n = 0, s = 0;
	int k = sscanf(line, "%31s %lu %lu", word, &n, &s);

	memset(f, 0, sizeof(*f));
	if (k < 1 || strcmp(word, "none") == 0)
		return 0;
	if (strcmp(word, "session_invalid") == 0 && k >= 2)
		f->mode = M_SESSION_INVALID;
	else if (strcmp(word, "device_error") == 0 && k >= 2)
		f->mode = M_DEVICE_ERROR;
	else if (strcmp(word, "stall") == 0 && k == 3)
		f->mode = M_STALL;
	else
		return -1;
	f->left = n;
	f->stall_s = s;
	if (n == 0)
		f->mode = M_NONE;
	return 0;
}

static const char *mode_word(enum mode m)
{
	switch (m) {
	case M_SESSION_INVALID: return "session_invalid";
	case M_DEVICE_ERROR: return "device_error";
	case M_STALL: return "stall";
	default: return "none";
	}
}

/* Rewrite the control file with what is left, atomically. */
static void save(const char *path, const struct fault *f)
{
	char tmp[4096];
	FILE *fp;

	if (snprintf(tmp, sizeof(tmp), "%s.fault-tmp", path) >= (int)sizeof(tmp) ||
	    (fp = fopen(tmp, "w")) == NULL)
		return;
	if (f->mode == M_NONE || f->left == 0)
		fprintf(fp, "none\n");
	else if (f->mode == M_STALL)
		fprintf(fp, "stall %lu %lu\n", f->left, f->stall_s);
	else
		fprintf(fp, "%s %lu\n", mode_word(f->mode), f->left);
	if (fclose(fp) == 0)
		rename(tmp, path);
}

static void note(const char *what, const char *fn)
{
	const char *path = getenv("MINTCA_FAULT_LOG");
	FILE *fp;

	if (path == NULL || (fp = fopen(path, "a")) == NULL)
		return;
	fprintf(fp, "%s %s\n", what, fn);
	fclose(fp);
}

/* The fault for this call, taken from the control file (one use of it). */
static struct fault take(const char *fn, int uses_session)
{
	const char *path = getenv("MINTCA_FAULT_CTL");
	struct fault f = { M_NONE, 0, 0 };
	char line[128] = "";
	FILE *fp;

	if (path == NULL)
		return f;
	pthread_mutex_lock(&mu);
	if ((fp = fopen(path, "r")) != NULL) {
		if (fgets(line, sizeof(line), fp) == NULL)
			line[0] = '\0';
		fclose(fp);
	}
	if (parse(line, &f) != 0) {
		fprintf(stderr, "pkcs11-fault: cannot parse %s: %s", path, line);
		f.mode = M_NONE;
	}
	if (f.mode == M_SESSION_INVALID && !uses_session)
		f.mode = M_NONE;
	if (f.mode != M_NONE) {
		struct fault rest = f;
		rest.left--;
		save(path, &rest);
		note(mode_word(f.mode), fn);
	}
	pthread_mutex_unlock(&mu);
	return f;
}

/* Apply the fault: 0 to go on with the real call, else the code to answer. */
static CK_RV inject(const char *fn, CK_SESSION_HANDLE h, int uses_session)
{
	struct fault f = take(fn, uses_session);
	CK_SESSION_INFO info;

	switch (f.mode) {
	case M_SESSION_INVALID:
		if (real->C_GetSessionInfo(h, &info) == CKR_OK)
			real->C_CloseAllSessions(info.slotID);
		return CKR_SESSION_HANDLE_INVALID;
	case M_DEVICE_ERROR:
		return CKR_DEVICE_ERROR;
	case M_STALL: {
		struct timespec ts = { (time_t)f.stall_s, 0 };
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		return CKR_OK;
	}
	default:
		return CKR_OK;
	}
}

static CK_RV f_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app,
			   CK_NOTIFY notify, CK_SESSION_HANDLE_PTR h)
{
	CK_RV rv = inject("C_OpenSession", 0, 0);
	return rv != CKR_OK ? rv : real->C_OpenSession(slot, flags, app, notify, h);
}

static CK_RV f_Login(CK_SESSION_HANDLE h, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
	CK_RV rv = inject("C_Login", h, 1);
	return rv != CKR_OK ? rv : real->C_Login(h, user, pin, len);
}

static CK_RV f_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	CK_RV rv = inject("C_FindObjectsInit", h, 1);
	return rv != CKR_OK ? rv : real->C_FindObjectsInit(h, t, n);
}

static CK_RV f_FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR o, CK_ULONG max, CK_ULONG_PTR n)
{
	CK_RV rv = inject("C_FindObjects", h, 1);
	return rv != CKR_OK ? rv : real->C_FindObjects(h, o, max, n);
}

static CK_RV f_GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	CK_RV rv = inject("C_GetAttributeValue", h, 1);
	return rv != CKR_OK ? rv : real->C_GetAttributeValue(h, o, t, n);
}

static CK_RV f_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
	CK_RV rv = inject("C_SignInit", h, 1);
	return rv != CKR_OK ? rv : real->C_SignInit(h, m, key);
}

static CK_RV f_Sign(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
	CK_RV rv = inject("C_Sign", h, 1);
	return rv != CKR_OK ? rv : real->C_Sign(h, data, len, sig, sig_len);
}

/* The one symbol a PKCS#11 consumer looks up: our copy of the real module's
 * list with the counted calls replaced. */
EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	CK_RV rv = CKR_OK;

	if (list == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&mu);
	if (real == NULL) {
		const char *path = getenv("MINTCA_FAULT_MODULE");
		CK_RV (*get)(CK_FUNCTION_LIST_PTR_PTR);

		if (path == NULL || path[0] == '\0')
			path = DEFAULT_MODULE;
		if ((real_so = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
			fprintf(stderr, "pkcs11-fault: cannot load %s: %s\n", path, dlerror());
			rv = CKR_GENERAL_ERROR;
		} else if ((*(void **)&get = dlsym(real_so, "C_GetFunctionList")) == NULL ||
			   (rv = get(&real)) != CKR_OK || real == NULL) {
			fprintf(stderr, "pkcs11-fault: %s has no usable C_GetFunctionList\n", path);
			dlclose(real_so);
			real_so = NULL;
			real = NULL;
			rv = CKR_GENERAL_ERROR;
		} else {
			ours = *real;
			ours.C_OpenSession = f_OpenSession;
			ours.C_Login = f_Login;
			ours.C_FindObjectsInit = f_FindObjectsInit;
			ours.C_FindObjects = f_FindObjects;
			ours.C_GetAttributeValue = f_GetAttributeValue;
			ours.C_SignInit = f_SignInit;
			ours.C_Sign = f_Sign;
		}
	}
	pthread_mutex_unlock(&mu);
	if (rv == CKR_OK)
		*list = &ours;
	return rv;
}

__attribute__((destructor)) static void unload(void)
{
	if (real_so != NULL)
		dlclose(real_so);
	real_so = NULL;
	real = NULL;
}
