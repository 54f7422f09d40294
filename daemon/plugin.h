/*
 * plugin.h -- plugin.c: tasks loaded from shared objects.
 */
#ifndef PLUGIN_H
#define PLUGIN_H

int plugin_load_dir(const char *dir);
void plugin_unload(void);

#endif
