# jq -s -c -f docs/bench/2026-12-02/levels/summary.jq docs/bench/2026-12-02/levels/results.jsonl
group_by(.case)[] | {
  case: .[0].case,
  run_s: [.[].run_s | . * 10 | round / 10],
  cuts: [.[].cuts],
  cut_ms_median: ([.[].cut_took_ms[]] | sort | if length > 0 then .[length/2|floor] | round else null end),
  cut_ms_min: ([.[].cut_took_ms[]] | min | if . then round else null end),
  recovery_ms: [.[].recovery_ms[] | round],
  restore_bytes: [.[].restore_bytes],
  shared_bytes_per_cut: [.[] | select(.cuts > 0) | (if .case | startswith("shared") then .shard_stored_bytes else .flush_bytes end) / .cuts | round],
  shared_written_mib_per_h: [.[] | ((if .case | startswith("shared") then .shard_stored_bytes else .flush_bytes end) / .run_s * 3600 / 1048576 | round)],
  partner_mib: [.[] | .partner_bytes / 1048576 | round]
}
