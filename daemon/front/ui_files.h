/* ui_files - the web dashboard's files (daemon/front/ui/), built into the binary.
 *
 * The table is generated at build time by scripts/embed-ui.sh from the files
 * in daemon/front/ui/ (into $(BUILD)/gen/ui_files.c), so the dashboard needs no
 * build step of its own and no files at run time. */
#ifndef A2AD_UI_FILES_H
#define A2AD_UI_FILES_H

#include <stddef.h>

struct ui_file {
    const char *path;          /* "/index.html", relative to /ui */
    const char *type;          /* Content-Type */
    const unsigned char *data;
    size_t len;
};

extern const struct ui_file ui_files[];
extern const size_t ui_files_count;

#endif
