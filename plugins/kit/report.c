#include "report.h"

#include <pgspout/abi.h>

void kit_report_records(const pgspout_host_api *host,
                        pgspout_sink_handle *handle,
                        pgspout_record_outcome what, size_t n)
{
    if (n && PGSPOUT_HAS_FIELD(host, pgspout_host_api, report_records) &&
        host->report_records)
        host->report_records(handle, what, n);
}
