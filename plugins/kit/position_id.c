#include "position_id.h"

#include <inttypes.h>
#include <stdio.h>

void kit_position_id(pgspout_position pos, char *buf, size_t buflen)
{
    snprintf(buf, buflen, "%" PRIX64 "-%" PRIu64, pos.commit_lsn, pos.seq);
}
