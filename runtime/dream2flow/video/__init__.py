"""Video ingestion: ``decode.load_video`` (MP4 / AVI / image folders, validated) and
``encode.write_video`` (mp4v)."""
