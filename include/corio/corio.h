/* corio/corio.h - everything: asyncio for C, on every core at once. */
#ifndef CORIO_CORIO_H
#define CORIO_CORIO_H

#include "common.h"
#include "future.h"
#include "task.h"
#include "runtime.h"
#include "combinators.h"
#include "time.h"
#include "net.h"
#include "fd.h"
#include "file.h"
#include "signal.h"
#include "stream.h"
#include "sync.h"
#include "queue.h"
#include "taskgroup.h"
#include "context.h"
#include "executor.h"
#include "process_pool.h"

#endif
