"""Video ingestion: ``decode.load_video`` (MP4 / AVI / image folders, validated) and
``encode.write_video`` (H.264 MP4, the one writer of every video the runtime makes)."""
