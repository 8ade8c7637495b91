/* A tiny guest /init for testing `vessel vmm` without the real agent.
 * It speaks the COM2 framed protocol through the kernel's 8250 driver
 * (/dev/ttyS1, interrupt driven like the agent will be):
 *   - sends 'O' "hello\n" and 'O' "vcpus=<online cpus>\n", and 'R' "to-stderr\n"
 *   - echoes every 'I' payload back as 'O' until 'E' (stdin EOF)
 *   - on an 'S' frame, reports 'O' "signal=<n>\n" and exits through port 0x502
 *     with that signal; otherwise exits through port 0x501 with status 3.
 * Build: gcc -static -O2 -o testguest testguest.c */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

static int tty;

static void frame(char kind, const char *data, int len) {
    unsigned char hdr[2] = {(unsigned char)kind, (unsigned char)len};
    write(tty, hdr, 2);
    if (len) write(tty, data, len);
}

static int read_full(unsigned char *buf, int len) {
    int got = 0;
    while (got < len) {
        int n = read(tty, buf + got, len - got);
        if (n <= 0) return -1;
        got += n;
    }
    return 0;
}

static void finish(unsigned short port, unsigned char value) {
    tcdrain(tty);
    if (ioperm(0x501, 2, 1) != 0) { perror("ioperm"); for (;;) pause(); }
    outb(value, port);
    for (;;) pause();
}

int main(void) {
    mkdir("/dev", 0755);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    tty = open("/dev/ttyS1", O_RDWR | O_NOCTTY);
    if (tty < 0) { perror("open /dev/ttyS1"); finish(0x501, 99); }
    struct termios t;
    tcgetattr(tty, &t);
    cfmakeraw(&t);
    tcsetattr(tty, TCSANOW, &t);

    char msg[64];
    frame('O', "", 0); /* ready: the port is raw, the host may send now */
    frame('O', "hello\n", 6);
    int n = snprintf(msg, sizeof msg, "vcpus=%ld\n", sysconf(_SC_NPROCESSORS_ONLN));
    frame('O', msg, n);
    frame('R', "to-stderr\n", 10);

    for (;;) {
        unsigned char hdr[2], payload[256];
        if (read_full(hdr, 2) < 0) break;
        if (read_full(payload, hdr[1]) < 0) break;
        if (hdr[0] == 'I') frame('O', (char *)payload, hdr[1]);
        else if (hdr[0] == 'E') break;
        else if (hdr[0] == 'S') {
            n = snprintf(msg, sizeof msg, "signal=%d\n", payload[0]);
            frame('O', msg, n);
            finish(0x502, payload[0]);
        }
    }
    finish(0x501, 3);
    return 0;
}
