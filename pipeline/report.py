"""The run summary, as a person reads it at the end of a run."""
from __future__ import annotations


def _reasons(skipped: dict) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in skipped.items()) or "none"


def _cohort_lines(cohorts: dict | None) -> list[str]:
    """Only for runs that had cohort users: other runs read as before."""
    if not cohorts or not (cohorts["delivered"] or cohorts["skipped"]
                           or cohorts["dead_letter"]):
        return []
    return [f"cohort users tagged    {cohorts['delivered']}",
            f"cohort users skipped   {sum(cohorts['skipped'].values())} "
            f"({_reasons(cohorts['skipped'])})"]


def format_summary(summary: dict, output_dir: str) -> str:
    events, members = summary["events"], summary["members"]
    lines = [
        f"records in             {summary['records_in']} "
        f"({summary['duplicates']} duplicates dropped)",
        f"events delivered       {events['delivered']}",
        f"events skipped         {sum(events['skipped'].values())} "
        f"({_reasons(events['skipped'])})",
        f"members upserted       {members['upserted']}",
        f"members skipped        {sum(members['skipped'].values())} "
        f"({_reasons(members['skipped'])})",
        *_cohort_lines(summary.get("cohorts")),
        f"unknown merge fields   {_reasons(summary['unknown_merge_fields'])}",
        f"invalid merge values   {_reasons(summary['invalid_merge_fields'])}",
        *([f"tags, permissions not sent {_reasons(summary['skipped_values'])}"]
          if summary.get("skipped_values") else []),
        f"dead letters           {summary['dead_letter']} "
        f"({_reasons(summary['dead_letter_by_reason'])})",
        f"files                  {output_dir}/skipped_members*.jsonl, "
        f"unknown_merge_fields*.jsonl, dead_letter*.jsonl",
        f"summary                {output_dir}/summary.json",
    ]
    return "\n".join(lines)
