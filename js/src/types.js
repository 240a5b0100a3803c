// The model fields the front end reads (hierx_nb/notebook/payload.py writes them), as JSDoc
// types checked by `npm run check` (tsc --noEmit). Binary columns arrive as DataView (Jupyter),
// ArrayBuffer or any typed array.

/** @typedef {DataView | ArrayBuffer | ArrayBufferView} Bytes */

/**
 * @typedef {object} Attempt
 * @property {string} name
 * @property {boolean} ok
 * @property {string} reason
 * @property {number | null} seconds
 * @property {boolean} skipped
 * @property {string[]} [switched]  model settings hierx changed for this try (hf_switches)
 */

/**
 * @typedef {object} Header
 * @property {string} model_class
 * @property {string} strategy
 * @property {Attempt[]} attempts
 * @property {number} nodes
 * @property {number} modules
 * @property {number} tagged
 * @property {number | null} coverage_pct  the known share (exact + pattern), in percent
 * @property {number | null} seconds
 * @property {string | null} onnx_path
 * @property {boolean} structure_only
 * @property {string[]} warnings
 * @property {IoRow[]} [io]
 */

// The binary parts (tree, nodes, graph) are specified once, in hierx_nb/notebook/payload_spec.json;
// data.js decodes them by that spec.
/** @typedef {Record<string, any>} TreePayload */
/** @typedef {Record<string, any>} NodesPayload */
/** @typedef {Record<string, any>} GraphPayload */

/**
 * @typedef {object} IoRow  a model input or output (result.io)
 * @property {"input" | "output"} kind
 * @property {string} name
 * @property {string} dtype
 * @property {(number | string)[] | null} shape  named dynamic axes as strings; null: rank unknown
 */

/**
 * @typedef {object} LatencyPayload
 * @property {Bytes} self_ms
 * @property {Bytes} total_ms
 * @property {Bytes} share
 * @property {number | null} kernel_ms
 * @property {number | null} unattributed_ms
 * @property {Record<string, number>} [by_op_type]
 * @property {Bytes} [node_ms]  per node (nodes order): median kernel ms per run it carries (NaN: none of its own)
 * @property {(string | null)[]} [fused_into]  per module: the module whose kernel ORT fused its work into
 */

/**
 * @typedef {object} DivergencePayload
 * @property {Bytes} max_abs_diff
 * @property {Bytes} ok
 * @property {string | null} first_divergent
 */

/**
 * @typedef {object} MetricsPayload
 * @property {LatencyPayload} [latency]
 * @property {DivergencePayload} [divergence]
 * @property {Record<string, any>} [compare]  result.compare(other): ms_a, ms_b, time_ratio, sqnr_db, own_sqnr_db (bytes), first_divergent, sqnr_threshold_db
 */

/**
 * @typedef {object} Model  the synced traits of HierxExplorer
 * @property {Header} header
 * @property {TreePayload} tree
 * @property {NodesPayload} nodes
 * @property {GraphPayload} graph
 * @property {MetricsPayload} metrics
 * @property {string} selected
 */

export {};
