#include "internal.h"
const struct kova_route kova_flavor_routes[] = {{0, NULL, NULL, NULL, 0}};
