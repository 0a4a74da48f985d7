/* startup - time from exec until a daemon accepts TCP connections.
 *
 *   startup PORT TIMEOUT_MS LOG COMMAND [ARGS...]
 *
 * Forks, execs COMMAND (stdout and stderr appended to LOG), and tries to
 * connect to 127.0.0.1:PORT every 100 microseconds. Prints the milliseconds
 * from just before exec to the first accepted connection (e.g. "4.213"),
 * then stops the child with SIGTERM (SIGKILL after 5 s) and reaps it.
 * Exit status 1 when the port did not answer within TIMEOUT_MS or the
 * child exited first.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int port_answers(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static void stop_child(pid_t pid) {
    kill(pid, SIGTERM);
    for (int i = 0; i < 500; i++) { /* 5 s */
        if (waitpid(pid, NULL, WNOHANG) == pid) return;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: startup PORT TIMEOUT_MS LOG COMMAND [ARGS...]\n");
        return 2;
    }
    uint16_t port = (uint16_t)atoi(argv[1]);
    double timeout = atof(argv[2]);
    if (port_answers(port)) {
        fprintf(stderr, "startup: port %u is already taken\n", port);
        return 1;
    }
    double t0 = now_ms();
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        int fd = open(argv[3], O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[4], argv + 4);
        _exit(127);
    }
    for (;;) {
        double t = now_ms() - t0;
        if (port_answers(port)) {
            printf("%.3f\n", t);
            stop_child(pid);
            return 0;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            fprintf(stderr, "startup: %s exited before it answered (see %s)\n", argv[4], argv[3]);
            return 1;
        }
        if (t > timeout) break;
        usleep(100);
    }
    fprintf(stderr, "startup: %s did not answer on port %u within %.0f ms\n", argv[4], port,
            timeout);
    stop_child(pid);
    return 1;
}
