#include "internal.h"
const struct kova_route kova_keypair_routes[] = {{0, NULL, NULL, NULL, 0}};
