/* modes - media types of message parts against an agent's input_modes
 * (the card's defaultInputModes).
 *
 * Pure functions on borrowed JSON; safe from any thread.
 */
#ifndef A2AD_MODES_H
#define A2AD_MODES_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

/* The media type of a 0.3 Part: "text/plain" for text, "application/json"
 * for data, file.mimeType for a file ("application/octet-stream" when it
 * has none). Borrowed from part or static. */
const char *modes_part_type(const cJSON *part);

/* Whether `type` is one of modes (NULL-terminated): equal ignoring case
 * and parameters (";charset=..."), or matched by "major/ *" or "* / *". */
bool modes_accepts(const char *const *modes, const char *type);

/* The first part of a 0.3 message whose type modes does not accept: its
 * index, or -1 when all are accepted (or modes is NULL). */
int modes_refused_part(const char *const *modes, const cJSON *message);

/* "text/plain, application/json" into buf (truncated to n). */
void modes_join(const char *const *modes, char *buf, size_t n);

#endif
