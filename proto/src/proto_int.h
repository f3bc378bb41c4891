/* proto_int.h - declarations shared between proto/src files; not visible to other modules. */
#ifndef HIE_PROTO_INT_H
#define HIE_PROTO_INT_H
#include "hie/proto.h"


#endif
