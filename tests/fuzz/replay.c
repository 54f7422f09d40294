/*
 * replay.c -- run fuzz_proto's entry point over files, without libFuzzer:
 * every file named on the command line, and every file in every directory
 * named (FUZZ_CORPUS_DIR when there are no arguments).  Fails when it
 * found nothing to run, so a wrong path cannot pass.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proto.h"

#ifndef FUZZ_CORPUS_DIR
#define FUZZ_CORPUS_DIR "corpus"
#endif

#define REPLAY_MAX_INPUT (8 * 1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
replay_file(const char *path)
{
	FILE *f;
	char *data;
	size_t n;

	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "fuzz_proto_replay: %s: %s\n", path,
		        strerror(errno));
		return -1;
	}
	if ((data = malloc(REPLAY_MAX_INPUT)) == NULL) {
		fclose(f);
		return -1;
	}
	n = fread(data, 1, REPLAY_MAX_INPUT, f);
	fclose(f);
	LLVMFuzzerTestOneInput((const uint8_t *)data, n);
	free(data);
	return 0;
}

static int
replay_dir_filter(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

static int
replay_path(const char *path, int *count)
{
	struct dirent **names;
	struct stat st;
	char file[4096];
	int i, n, rc = 0;

	if (stat(path, &st) == -1) {
		fprintf(stderr, "fuzz_proto_replay: %s: %s\n", path,
		        strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		if (replay_file(path) == -1)
			return -1;
		(*count)++;
		return 0;
	}
	if ((n = scandir(path, &names, replay_dir_filter, alphasort)) == -1) {
		fprintf(stderr, "fuzz_proto_replay: %s: %s\n", path,
		        strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		snprintf(file, sizeof(file), "%s/%s", path, names[i]->d_name);
		if (stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
			if (replay_file(file) == -1)
				rc = -1;
			else
				(*count)++;
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int
main(int argc, char **argv)
{
	int i, count = 0, rc = 0;

	if (argc < 2)
		rc = replay_path(FUZZ_CORPUS_DIR, &count);
	for (i = 1; i < argc; i++)
		if (replay_path(argv[i], &count) == -1)
			rc = -1;
	printf("fuzz_proto_replay: %d inputs\n", count);
	return rc == 0 && count > 0 ? 0 : 1;
}
