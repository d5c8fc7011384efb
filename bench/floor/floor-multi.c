/* The floor for many targets (bench/agent-cost.ts): one wake-up per tick at absolute
 * deadlines (clock_nanosleep TIMER_ABSTIME), then 6 preads of /proc/PID/mem for every
 * target, nothing else — what any sampler of N processes pays per tick.
 * Usage: floor-multi RATE_HZ SECONDS PID ADDRESS [PID ADDRESS …] */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 5 || (argc - 3) % 2) { fprintf(stderr, "usage: floor-multi RATE_HZ SECONDS PID ADDRESS [PID ADDRESS …]\n"); return 2; }
  int n = (argc - 3) / 2;
  int *fd = calloc(n, sizeof *fd);
  unsigned long *addr = calloc(n, sizeof *addr);
  for (int j = 0; j < n; j++) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/mem", argv[3 + 2 * j]);
    fd[j] = open(path, O_RDONLY);
    if (fd[j] < 0) { perror(path); return 1; }
    addr[j] = strtoul(argv[4 + 2 * j], 0, 0);
  }
  long period = (long)(1e9 / atof(argv[1]));
  long ticks = (long)(atof(argv[2]) * atof(argv[1]));
  static char buf[6][512];
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  for (long i = 0; i < ticks; i++) {
    t.tv_nsec += period;
    while (t.tv_nsec >= 1000000000L) { t.tv_nsec -= 1000000000L; t.tv_sec++; }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, 0);
    for (int j = 0; j < n; j++)
      for (int k = 0; k < 6; k++)
        if (pread(fd[j], buf[k], 512, (off_t)(addr[j] + 512UL * k)) < 0) { perror("pread"); return 1; }
  }
  return 0;
}
