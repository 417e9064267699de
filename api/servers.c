#include "internal.h"
const struct kova_route kova_server_routes[] = {{0, NULL, NULL, NULL, 0}};
