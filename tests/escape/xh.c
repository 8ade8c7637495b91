/* xh: raw-syscall escape attempts for tests/tenant_escape.rs, built with
 * `cc -static` by the test and copied into each container's rootfs.
 * Every subcommand prints one line "<name> ok" or "<name> <ERRNO>" (the
 * errno's symbolic name) and exits 0, so the test asserts the exact error. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *ename(int e) {
  switch (e) {
#define E(x) case x: return #x;
    E(EPERM) E(ENOENT) E(ESRCH) E(EIO) E(ENXIO) E(EBADF) E(EACCES) E(EFAULT)
    E(EBUSY) E(EEXIST) E(ENODEV) E(ENOTDIR) E(EISDIR) E(EINVAL) E(EROFS)
    E(ENOSYS) E(ENOEXEC) E(ESTALE) E(ENOKEY) E(EKEYREVOKED) E(EOPNOTSUPP)
    E(ETXTBSY) E(ENOSPC) E(ELOOP) E(EXDEV) E(ENOMEM) E(EAGAIN) E(EDQUOT)
#undef E
  default: return "E?";
  }
}

static int report(const char *what, long r) {
  if (r < 0) printf("%s %s\n", what, ename(errno));
  else printf("%s ok %ld\n", what, r);
  fflush(stdout);
  return 0;
}

static unsigned long mflags(const char *s) {
  unsigned long f = 0;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", s);
  for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
    if (!strcmp(t, "bind")) f |= MS_BIND;
    else if (!strcmp(t, "rec")) f |= MS_REC;
    else if (!strcmp(t, "remount")) f |= MS_REMOUNT;
    else if (!strcmp(t, "ro")) f |= MS_RDONLY;
    else if (!strcmp(t, "shared")) f |= MS_SHARED;
    else if (!strcmp(t, "private")) f |= MS_PRIVATE;
    else if (!strcmp(t, "slave")) f |= MS_SLAVE;
    else if (!strcmp(t, "nosuid")) f |= MS_NOSUID;
    else if (!strcmp(t, "nodev")) f |= MS_NODEV;
    else if (!strcmp(t, "noexec")) f |= MS_NOEXEC;
    else if (strcmp(t, "0")) { fprintf(stderr, "xh: flag %s?\n", t); exit(2); }
  }
  return f;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: xh CMD ARGS\n"); return 2; }
  const char *c = argv[1];
  if (!strcmp(c, "mount") && argc == 7) {
    /* xh mount SRC TARGET FSTYPE FLAGS DATA ("-" for none) */
    const char *d = strcmp(argv[6], "-") ? argv[6] : NULL;
    const char *t = strcmp(argv[4], "-") ? argv[4] : NULL;
    return report("mount", mount(argv[2], argv[3], t, mflags(argv[5]), d));
  }
  if (!strcmp(c, "finit_module") && argc == 3) {
    int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
    if (fd < 0) return report("open", -1);
    return report("finit_module", syscall(SYS_finit_module, fd, "", 0));
  }
  if (!strcmp(c, "init_module") && argc == 3) {
    static char buf[1 << 22];
    int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
    if (fd < 0) return report("open", -1);
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) return report("read", -1);
    return report("init_module", syscall(SYS_init_module, buf, (unsigned long)n, ""));
  }
  if (!strcmp(c, "write") && argc == 4) {
    /* xh write PATH TEXT: open O_WRONLY and write */
    int fd = open(argv[2], O_WRONLY | O_CLOEXEC);
    if (fd < 0) return report("open", -1);
    return report("write", write(fd, argv[3], strlen(argv[3])));
  }
  if (!strcmp(c, "read") && argc == 3) {
    char b[4096];
    int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
    if (fd < 0) return report("open", -1);
    return report("read", read(fd, b, sizeof b));
  }
  if (!strcmp(c, "kill0") && argc == 3)
    return report("kill0", kill(atoi(argv[2]), 0));
  if (!strcmp(c, "ptrace") && argc == 3) {
    long r = ptrace(PTRACE_SEIZE, atoi(argv[2]), 0, 0);
    return report("ptrace", r);
  }
  if (!strcmp(c, "mknod") && argc == 5) {
    /* xh mknod PATH MAJOR MINOR: a block device, then read it */
    unlink(argv[2]);
    if (mknod(argv[2], S_IFBLK | 0600, makedev(atoi(argv[3]), atoi(argv[4]))) < 0)
      return report("mknod", -1);
    report("mknod", 0);
    char b[512];
    int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
    if (fd < 0) return report("open", -1);
    return report("read", read(fd, b, sizeof b));
  }
  if (!strcmp(c, "handle") && argc == 3) {
    /* xh handle DIR: Shocker (CVE-2014 docker): a handle for inode 2 (the
     * root of the filesystem under the container's rootfs), opened
     * relative to DIR, as a file and as a directory. */
    struct { struct file_handle h; unsigned char f[128]; } fh;
    int mnt_id, mfd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mfd < 0) return report("open", -1);
    fh.h.handle_bytes = 128;
    if (syscall(SYS_name_to_handle_at, AT_FDCWD, argv[2], &fh.h, &mnt_id, 0) < 0)
      return report("name_to_handle_at", -1);
    report("name_to_handle_at", 0);
    /* ext4/xfs FILEID_INO32_GEN: {u32 ino, u32 gen}; inode 2 is the root. */
    fh.h.handle_type = 1;
    fh.h.handle_bytes = 8;
    unsigned int ino2[2] = {2, 0};
    memcpy(fh.h.f_handle, ino2, 8);
    report("open_by_handle_at", syscall(SYS_open_by_handle_at, mfd, &fh.h, O_RDONLY));
    return report("open_by_handle_at_dir",
                  syscall(SYS_open_by_handle_at, mfd, &fh.h, O_RDONLY | O_DIRECTORY));
  }
  if (!strcmp(c, "keyread") && argc == 3) {
    /* KEYCTL_READ of a key serial from the host */
    char b[256];
    return report("keyread", syscall(SYS_keyctl, 11, atol(argv[2]), b, sizeof b));
  }
  if (!strcmp(c, "keyjoin") && argc == 3) {
    /* KEYCTL_JOIN_SESSION_KEYRING by name: the serial it joined */
    return report("keyjoin", syscall(SYS_keyctl, 1, argv[2]));
  }
  if (!strcmp(c, "keysession") && argc == 2)
    /* KEYCTL_GET_KEYRING_ID of the session keyring, without creating one */
    return report("keysession", syscall(SYS_keyctl, 0, -3, 0));
  if (!strcmp(c, "hostkey") && argc >= 4) {
    /* On the host: xh hostkey NAME SECRET CMD...: a new named session
     * keyring holding a user key, print both serials, exec CMD. */
    long ring = syscall(SYS_keyctl, 1, argv[2]);
    if (ring < 0) { perror("join"); return 1; }
    long key = syscall(SYS_add_key, "user", "vessel-escape", argv[3], strlen(argv[3]), ring);
    if (key < 0) { perror("add_key"); return 1; }
    char v[32];
    snprintf(v, sizeof v, "%ld", ring);
    setenv("XH_RING", v, 1);
    snprintf(v, sizeof v, "%ld", key);
    setenv("XH_KEY", v, 1);
    if (argc > 4) { execvp(argv[4], argv + 4); perror("exec"); return 127; }
    return 0;
  }
  fprintf(stderr, "xh: bad command %s\n", c);
  return 2;
}
