{
  "targets": [
    {
      "target_name": "cg_nfq",
      "sources": ["nfq.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
