# Two moons with a small tanh MLP, written in HCL: the same schema validates it.
name = "moons-tanh"

dataset {
  name    = "moons"
  samples = 4000
  noise   = 0.15
  batch   = 64
}

model {
  kind       = "mlp"
  hidden     = [32, 32]
  activation = "tanh"
}

optimizer {
  kind     = "sgd"
  lr       = 0.1
  momentum = 0.9
  nesterov = true
}

train {
  epochs = 5
  seed   = 7
}
