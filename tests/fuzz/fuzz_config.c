/*
 * fuzz_config.c - libFuzzer driver for the node's configuration loader (an operator file, but
 * parsed by libcyaml and then validated: style.md 3.10 fuzzes every untrusted decoder).
 *
 * The input is written to <tmp>/node.yaml and loaded with hie_node__config_load(). The
 * temporary directory is made once per process, with readable dummy ca.pem, node.pem,
 * node.key and crl.pem so configs that name them can get past the file checks, and is removed
 * at exit. Kept cheap: one small file write and one load per input.
 *
 * Built with replay_main.c into fuzz_config_replay, which CI runs over corpus/fuzz_config/.
 */
#include "node_int.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir[64];
static char fuzz_path[128];

static int
rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void
fuzz_dir_remove(void)
{
    if (fuzz_dir[0] != '\0') {
        (void)nftw(fuzz_dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
        fuzz_dir[0] = '\0';
    }
}

static bool
write_all(const char *path, const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return false;
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) {
            close(fd);
            return false;
        }
        done += (size_t)n;
    }
    return close(fd) == 0;
}

static void
fuzz_dir_make(void)
{
    snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/hie-fuzz-config-XXXXXX");
    HIE_ASSERT(mkdtemp(fuzz_dir) != NULL);
    static const char *const names[] = {"ca.pem", "node.pem", "node.key", "crl.pem"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(names); i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", fuzz_dir, names[i]);
        HIE_ASSERT(write_all(path, (const uint8_t *)"dummy\n", 6));
    }
    snprintf(fuzz_path, sizeof(fuzz_path), "%s/node.yaml", fuzz_dir);
    atexit(fuzz_dir_remove);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_dir[0] == '\0') {
        fuzz_dir_make();
    }
    HIE_ASSERT(write_all(fuzz_path, data, size));
    node_config_t cfg;
    char err[1024];
    err[0] = '\0';
    int rc = hie_node__config_load(&cfg, fuzz_path, err, sizeof(err));
    HIE_ASSERT(rc == 0 || rc == HIE_ECONFIG || rc < 0);
    HIE_ASSERT(memchr(err, '\0', sizeof(err)) != NULL);
    if (rc == 0) {
        /* what the loader accepted is within every limit */
        HIE_ASSERT(hie_proto_org_id_valid(cfg.node_id, strlen(cfg.node_id)));
        HIE_ASSERT(cfg.listen_port > 0);
        HIE_ASSERT(cfg.frame_bytes_max >= HIE_PROTO_FRAME_BYTES_MIN);
        HIE_ASSERT(cfg.frame_bytes_max <= HIE_PROTO_FRAME_BYTES_MAX);
        HIE_ASSERT(cfg.workers >= 1 && cfg.workers <= HIE_NODE_WORKERS_MAX);
        HIE_ASSERT(cfg.connections_max >= 1 && cfg.connections_max <= HIE_EDGE_CONNECTIONS_MAX);
        HIE_ASSERT(cfg.inflight_max >= 1 && cfg.inflight_max <= HIE_EDGE_INFLIGHT_MAX);
        HIE_ASSERT(cfg.tls_min_version == TLS1_3_VERSION ||
                   cfg.tls_min_version == TLS1_2_VERSION);
        HIE_ASSERT(strlen(cfg.admin_socket) <= 100);
        HIE_ASSERT(cfg.map_bytes <= HIE_LMDB_MAP_BYTES_MAX);
    } else {
        HIE_ASSERT(err[0] != '\0'); /* every refusal says why */
    }
    return 0;
}
