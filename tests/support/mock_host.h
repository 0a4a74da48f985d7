/* The mock host of the plugin SDK (include/a2ad/mock.h, liba2ad-mock.a),
 * under the name the suites have always included. */
#ifndef A2AD_TEST_MOCK_HOST_H
#define A2AD_TEST_MOCK_HOST_H
#include "a2ad/mock.h"
#endif
