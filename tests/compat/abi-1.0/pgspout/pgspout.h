/* Everything a sink author needs. */
#ifndef PGSPOUT_PGSPOUT_H
#define PGSPOUT_PGSPOUT_H

#include "abi.h"
#include "event.h"
#include "host.h"
#include "option.h"
#include "position.h"
#include "sink.h"
#include "status.h"

#endif
