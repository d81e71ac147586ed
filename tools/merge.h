// `sigrace merge` (combine shard reports, stress/merge.h) and `sigrace
// report` (render reports as one HTML page, stress/report_html.h).
//
// Thread safety: run on the main thread. Not async-signal-safe.

#ifndef SIGRACE_TOOLS_MERGE_H_
#define SIGRACE_TOOLS_MERGE_H_

namespace sigrace::stress {

int MergeMain(int argc, char** argv);
int ReportMain(int argc, char** argv);

}  // namespace sigrace::stress

#endif  // SIGRACE_TOOLS_MERGE_H_
