"""`reconcile import`: bringing existing Marketo leads under code.

Reads leads through Get Leads (by ID or email), writes them as a lead file keyed by `leadId`, and
records them in the state, so the next plan finds nothing to do. The pieces:
- `request`: which leads were asked for (`--id`, `--email`, `--ids-from`);
- `claims`: refusing leads the lead files or the state already declare;
- `reader`: the Get Leads calls, in parallel, paced and retried like apply's writes;
- `leads`: Marketo's answers as lead-file leads (field names, values as exact text);
- `yamlout`: the lead file's text, every value quoted where YAML would read it as something else.
"""

from reconcile.adopt.request import ImportRequest, build_request, read_ids_file

__all__ = ["ImportRequest", "build_request", "read_ids_file"]
