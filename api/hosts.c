#include "internal.h"
const struct kova_route kova_host_routes[] = {{0, NULL, NULL, NULL, 0}};
