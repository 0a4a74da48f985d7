/* util: ids, base64, UTF-8 checks and the hash map the store is built on. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

START_TEST(uuid_is_v4_and_unique) {
    char a[UUID_STR_LEN], b[UUID_STR_LEN];
    util_uuid(a);
    util_uuid(b);
    ck_assert_uint_eq(strlen(a), 36);
    ck_assert_int_eq(a[14], '4');
    ck_assert(strchr("89ab", a[19]) != NULL);
    ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(base64_round_trips_every_length) {
    unsigned char data[64];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (unsigned char)(i * 37 + 1);
    for (size_t len = 0; len <= sizeof data; len++) {
        char *enc = util_base64_encode(data, len);
        ck_assert_ptr_nonnull(enc);
        ck_assert_uint_eq(strlen(enc), 4 * ((len + 2) / 3));
        size_t out_len = 999;
        unsigned char *dec = util_base64_decode(enc, &out_len);
        ck_assert_ptr_nonnull(dec);
        ck_assert_uint_eq(out_len, len);
        ck_assert(len == 0 || memcmp(dec, data, len) == 0);
        free(enc);
        free(dec);
    }
    char *foo = util_base64_encode("foobar", 6);
    ck_assert_str_eq(foo, "Zm9vYmFy");
    free(foo);
    size_t n;
    ck_assert_ptr_null(util_base64_decode("Zm9=vYmF", &n));
    ck_assert_ptr_null(util_base64_decode("abc", &n));
}
END_TEST

START_TEST(utf8_validation) {
    ck_assert(util_utf8_valid("plain ascii", 11));
    ck_assert(util_utf8_valid("caf\xc3\xa9", 5));
    ck_assert(util_utf8_valid("\xf0\x9f\x98\x80", 4));
    ck_assert(!util_utf8_valid("\xc3", 1));          /* truncated */
    ck_assert(!util_utf8_valid("\xc0\xaf", 2));      /* overlong */
    ck_assert(!util_utf8_valid("\xed\xa0\x80", 3));  /* surrogate */
    ck_assert(!util_utf8_valid("a\0b", 3));          /* NUL */
    ck_assert(!util_utf8_valid("\xff", 1));
}
END_TEST

START_TEST(hmap_put_get_remove_grow) {
    struct hmap *m = hmap_new(4);
    char key[32];
    static int values[5000];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_int_eq(hmap_put(m, key, &values[i]), A2AD_OK);
    }
    ck_assert_uint_eq(hmap_count(m), 5000);
    for (int i = 0; i < 5000; i += 7) {
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_ptr_eq(hmap_get(m, key), &values[i]);
    }
    ck_assert_ptr_eq(hmap_remove(m, "k42"), &values[42]);
    ck_assert_ptr_null(hmap_get(m, "k42"));
    ck_assert_ptr_null(hmap_remove(m, "k42"));
    ck_assert_uint_eq(hmap_count(m), 4999);
    hmap_free(m);
}
END_TEST

Suite *util_suite(void);
Suite *util_suite(void) {
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, uuid_is_v4_and_unique);
    tcase_add_test(tc, base64_round_trips_every_length);
    tcase_add_test(tc, utf8_validation);
    tcase_add_test(tc, hmap_put_get_remove_grow);
    suite_add_tcase(s, tc);
    return s;
}
