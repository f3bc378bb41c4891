/*
 * err.c - hie_strerror() and the assertion failure path.
 * Callers: everyone. The tables are static and read-only.
 */
#include "hie/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct err_entry {
    int rc;
    const char *name;
    const char *text;
};

static const struct err_entry err_table[] = {
    {HIE_EAGAIN, "HIE_EAGAIN", "need more data"},
    {HIE_ENOTFOUND, "HIE_ENOTFOUND", "not found"},
    {HIE_EINVAL, "HIE_EINVAL", "invalid argument"},
    {HIE_EPROTO, "HIE_EPROTO", "malformed message"},
    {HIE_ELIMIT, "HIE_ELIMIT", "limit exceeded"},
    {HIE_EDENIED, "HIE_EDENIED", "permission denied"},
    {HIE_ENOMEM, "HIE_ENOMEM", "out of memory"},
    {HIE_ECORRUPT, "HIE_ECORRUPT", "stored data is corrupt"},
    {HIE_ESTATE, "HIE_ESTATE", "object unusable after an earlier failure"},
    {HIE_EUNAUTH, "HIE_EUNAUTH", "peer not authenticated"},
    {HIE_EBUSY, "HIE_EBUSY", "overloaded"},
    {HIE_EUNAVAIL, "HIE_EUNAVAIL", "unavailable"},
    {HIE_ETIMEDOUT, "HIE_ETIMEDOUT", "timed out"},
    {HIE_ESTORAGE, "HIE_ESTORAGE", "storage failure"},
    {HIE_ECONFIG, "HIE_ECONFIG", "invalid configuration"},
    {HIE_ETLS, "HIE_ETLS", "tls failure"},
    {HIE_ENOSPC, "HIE_ENOSPC", "storage full"},
};

static const struct err_entry *
err_find(int rc)
{
    for (size_t i = 0; i < HIE_ARRAY_LEN(err_table); i++) {
        if (err_table[i].rc == rc) {
            return &err_table[i];
        }
    }
    return NULL;
}

const char *
hie_strerror(int rc)
{
    if (rc == 0) {
        return "success";
    }
    const struct err_entry *e = err_find(rc);
    if (e != NULL) {
        return e->text;
    }
    if (rc < 0 && rc > HIE_ERR_MAX) {
        return strerror(-rc); /* glibc: thread-safe for known codes, static strings */
    }
    return "unknown error";
}

const char *
hie_strerror_name(int rc)
{
    if (rc == 0) {
        return "OK";
    }
    const struct err_entry *e = err_find(rc);
    if (e != NULL) {
        return e->name;
    }
    if (rc < 0 && rc > HIE_ERR_MAX) {
        const char *n = strerrorname_np(-rc);
        return n != NULL ? n : "ERRNO";
    }
    return "UNKNOWN";
}

void
hie__assert_fail(const char *expr, const char *file, int line, const char *func)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf), "%s:%d %s: assertion '%s' failed\n", file, line, func,
        expr);
    if (n > 0) {
        size_t len = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
        ssize_t w = write(STDERR_FILENO, buf, len);
        (void)w;
    }
    abort();
}
