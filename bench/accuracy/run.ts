// bench/accuracy: LeNet-5 on Fashion-MNIST, 2 epochs, SGD lr 0.05 momentum 0.9, batch 128,
// mean/std normalisation, Squall beside PyTorch (../shared/peers/fashion_lenet_train.py).
//   node dist/bench/accuracy/run.js [--seeds 1,2,3] [--backends native] [--threads 2]
//       each side with its own seeded initialisation and order (seeded.ts; bench/results/accuracy.*)
//   node dist/bench/accuracy/run.js --controlled [--seeds 1,2,3] [--backend native] [--threads 2]
//       Squall replays PyTorch's initial weights and batch order for each seed and both runs'
//       losses, weights and accuracies are compared (controlled.ts; bench/results/accuracy-controlled.*)
if (process.argv.includes('--controlled')) await import('./controlled.js');
else await import('./seeded.js');
