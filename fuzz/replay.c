/* A main() for the fuzz harnesses without libFuzzer: runs each input once.
 *
 *   fuzz_parent_replay FILE|DIR...
 *
 * Every build with the tests links the harnesses with this file and runs
 * them over their seed corpus (fuzz/corpus/<harness>/) as a ctest test, so
 * that each input ever kept — seeds, and the reproducers of what fuzzing
 * found — is a regression test in every lane (host, dev root, ASan,
 * valgrind) with the compiler of that lane, not only under clang. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf;
  long n;
  if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
      fseek(f, 0, SEEK_SET) != 0) {
    perror(path);
    if (f != NULL)
      fclose(f);
    return -1;
  }
  buf = malloc(n > 0 ? (size_t)n : 1);
  if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
    perror(path);
    free(buf);
    fclose(f);
    return -1;
  }
  fclose(f);
  LLVMFuzzerTestOneInput(buf, (size_t)n);
  free(buf);
  return 0;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_dir(const char *dir, int *count) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char **names = NULL, path[4096];
  size_t n = 0, cap = 0, i;
  int r = 0;
  if (d == NULL) {
    perror(dir);
    return -1;
  }
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      names = realloc(names, cap * sizeof(*names));
      if (names == NULL)
        abort();
    }
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, n, sizeof(*names), by_name);
  for (i = 0; i < n; i++) {
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
    if (replay_file(path))
      r = -1;
    else
      (*count)++;
    free(names[i]);
  }
  free(names);
  return r;
}

int main(int argc, char **argv) {
  struct stat st;
  int i, count = 0, bad = 0;
  if (LLVMFuzzerInitialize != NULL)
    LLVMFuzzerInitialize(&argc, &argv);
  for (i = 1; i < argc; i++) {
    if (stat(argv[i], &st) != 0) {
      perror(argv[i]);
      bad = 1;
    } else if (S_ISDIR(st.st_mode)) {
      bad |= replay_dir(argv[i], &count) != 0;
    } else {
      bad |= replay_file(argv[i]) != 0;
      count += !bad;
    }
  }
  printf("%s: %d input(s) replayed%s\n", argv[0], count,
         bad ? ", some could not be read" : "");
  return bad || count == 0;
}
