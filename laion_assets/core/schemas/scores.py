"""Schema of `clip_scores`: one row per `ok` download, scored or given a reason.

Contract relied on downstream: key, status, similarity, threshold, model_id, punsafe, nsfw.
`embedding_row` indexes the shard's float16 embedding arrays (null when not scored).
"""

import pyarrow as pa

SCORE_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("similarity", pa.float32()),
        pa.field("threshold", pa.float32()),
        pa.field("language", pa.string()),
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("weights_id", pa.string()),
        pa.field("punsafe", pa.float32()),
        pa.field("nsfw", pa.string()),
        pa.field("embedding_row", pa.int32()),
    ]
)

# The shard's float16 embeddings beside the score rows (row i = `embedding_row` i), per committed version.
IMG_EMB_FILE = "img_emb.npy"
TEXT_EMB_FILE = "text_emb.npy"
