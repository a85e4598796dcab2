{
  "targets": [
    {
      "target_name": "cg_aead",
      "sources": ["aead.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
