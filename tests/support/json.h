/* Small helpers the test suites share: reading JSON by dotted path, and
 * napping. */
#ifndef A2AD_TEST_JSON_H
#define A2AD_TEST_JSON_H

#include <cJSON.h>

/* Sleep ms milliseconds. */
void test_nap_ms(long ms);

/* The value at a dotted path ("status.message.parts.0.text"): components
 * are object keys, or array indexes when they start with a digit and the
 * current value is an array. NULL when absent. When alias is not NULL, a
 * component equal to alias stands for key (for keys that contain dots,
 * such as extension URIs). */
const cJSON *json_at_key(const cJSON *o, const char *path, const char *alias, const char *key);
const cJSON *json_at(const cJSON *o, const char *path);

/* The string at path, or "(absent)" (so it can go straight into a string
 * assertion and fail readably). */
const char *json_str(const cJSON *o, const char *path);
/* The integer at path, or -99999 when absent or not a number. */
int json_int(const cJSON *o, const char *path);

#endif
