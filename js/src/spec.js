// The payload's one column spec (hierx_nb/notebook/payload_spec.json), bundled: payload.py's
// check_payload reads the same file.
import spec from "../../hierx_nb/notebook/payload_spec.json" with { type: "json" };

export default spec;
