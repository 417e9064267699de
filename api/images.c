#include "internal.h"
const struct kova_route kova_image_routes[] = {{0, NULL, NULL, NULL, 0}};
int image_upload_begin(struct kova_req *r)
{
    return 0;
}
int image_upload_chunk(struct kova_req *r, const char *data, size_t len)
{
    return 0;
}
void image_upload_abort(struct kova_req *r)
{
}
