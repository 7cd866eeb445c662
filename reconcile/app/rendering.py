"""A plan as text, JSON or Markdown, with the calls apply will make."""

from __future__ import annotations


def _render(plan, fmt: str, color: bool, calls=None, drift=None, against_state: bool = False,
            compact: bool = False, full: bool = False) -> str:
    from reconcile.core import render

    calls = calls or render.Calls()
    if compact:
        return render.render_compact(plan, calls, drift, against_state)
    if fmt == "json":
        return render.render_json(plan, calls, drift)
    if fmt == "markdown":
        return render.render_markdown(plan, calls, drift, against_state)
    return render.render_text(plan, color=color, calls=calls, drift=drift, against_state=against_state,
                              full=full)


def _calls(plan, api: str, dedup_enabled: bool = True, foreign_id_field: str | None = None):
    """The API's call name and how many calls apply makes: a transport that groups records (REST: one
    lookup key per call) or caps a call's bytes may need more calls than records / batch size; they
    are cut as apply cuts them."""
    from reconcile.core import render
    from reconcile.remote import registry

    transport = registry.get(api)
    if transport.group_of is None:
        return render.Calls(transport.call_name)
    from reconcile.apply import plan_batches

    group_of = transport.group_of
    field = foreign_id_field or "foreign-id-field"  # any name: only which records share a call matters
    sizes = {}
    if transport.plan_sizes is not None and transport.max_call_bytes is not None:
        size_of, size_bound_of = transport.plan_sizes(field)
        sizes = dict(size_of=size_of, size_bound_of=size_bound_of, max_call_bytes=transport.max_call_bytes)
    batches = plan_batches(plan, plan.batch_size, dedup_enabled,
                           group_of=lambda record, dedup: group_of(record, dedup, field), **sizes)
    return render.Calls(transport.call_name, len(batches))
