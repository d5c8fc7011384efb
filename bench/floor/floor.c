/* The floor a CPython sampler cannot go below (bench/sampler-floor.ts): wake at absolute
 * deadlines (clock_nanosleep TIMER_ABSTIME), then 6 preads of /proc/PID/mem, nothing else.
 * Usage: floor PID RATE_HZ SECONDS ADDRESS */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 5) { fprintf(stderr, "usage: floor PID RATE_HZ SECONDS ADDRESS\n"); return 2; }
  char path[64];
  snprintf(path, sizeof path, "/proc/%s/mem", argv[1]);
  int fd = open(path, O_RDONLY);
  if (fd < 0) { perror(path); return 1; }
  long period = (long)(1e9 / atof(argv[2]));
  long n = (long)(atof(argv[3]) * atof(argv[2]));
  unsigned long addr = strtoul(argv[4], 0, 0);
  static char buf[6][512];
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  for (long i = 0; i < n; i++) {
    t.tv_nsec += period;
    while (t.tv_nsec >= 1000000000L) { t.tv_nsec -= 1000000000L; t.tv_sec++; }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, 0);
    for (int k = 0; k < 6; k++)
      if (pread(fd, buf[k], 512, (off_t)(addr + 512UL * k)) < 0) { perror("pread"); return 1; }
  }
  return 0;
}
