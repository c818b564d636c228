# The same spec as mlp.cue, in HCL.
name = "fmnist-mlp"

dataset {
  name  = "fashion-mnist"
  batch = 128
}

model {
  kind       = "mlp"
  hidden     = [512, 256]
  activation = "relu"
}

loss {
  kind            = "cross_entropy"
  label_smoothing = 0.1
}

optimizer {
  kind = "adamw"
  lr   = 0.001
  schedule {
    kind         = "cosine"
    warmup_steps = 200
  }
}

train {
  epochs = 8
  seed   = 1
}
