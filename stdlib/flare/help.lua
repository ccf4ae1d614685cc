-- flare.help: help() and who() for the prompt, and the documentation of the functions
-- written in C (those written in Lua are documented beside their definitions: by the
-- comment block just above `function ...`, or by flare.doc(f, text)). Loaded on the first
-- call of help() or who(), so start-up does not pay for it.
local format = require 'flare.format'

local M = {}

local function flare() return package.loaded['flare'] or require 'flare' end

-- ---------------------------------------------------------------- the C functions' docs
-- docs[name] = {cat, signature, text}; `name` is the bare name shared by flare.name and
-- x:name. In-place forms (name_) and the aliases below are derived, not repeated.

local docs = {}
M.docs = docs

local function def(cat, name, sig, text)
  docs[name] = { cat = cat, sig = sig, text = text }
end

M.aliases = {
  multiply = 'mul', divide = 'div', subtract = 'sub', negative = 'neg', greater_equal = 'ge',
  less_equal = 'le', clip = 'clamp', nDimension = 'dim', nElement = 'numel', concat = 'cat',
  ger = 'outer', requires_grad_ = 'requires_grad', tolist = 'totable',
}

M.categories = {
  { 'create', 'Creating tensors' },
  { 'info', 'Tensor properties and conversions' },
  { 'math', 'Elementwise math (broadcasting, PyTorch type promotion)' },
  { 'reduce', 'Reductions, sorting, softmax' },
  { 'view', 'Views and reshaping (no copy where possible)' },
  { 'index', 'Indexing, gathering and scattering (1-based indices)' },
  { 'linalg', 'Linear algebra (OpenBLAS)' },
  { 'autograd', 'Gradients' },
  { 'loss', 'Losses' },
  { 'nn', 'Convolution and pooling' },
  { 'io', 'Files and bytes' },
  { 'system', 'Threads, memory, timing, documentation' },
  { 'prompt', 'The prompt' },
}

-- creation
def('create', 'tensor', 'flare.tensor(data, [{dtype=, device=, requires_grad=}])',
  'A new tensor holding a copy of `data`: a number, a nested table of numbers or booleans,\n' ..
  'or a tensor. The dtype is inferred (float32 for numbers, bool for booleans) unless given.\n' ..
  'Example: flare.tensor({{1, 2}, {3, 4}}, {dtype = "float64"})')
def('create', 'zeros', 'flare.zeros(sizes..., [{dtype=, device=}])',
  'A tensor filled with 0. Sizes as integers or one table: flare.zeros(2, 3), flare.zeros{2, 3}.')
def('create', 'ones', 'flare.ones(sizes..., [{dtype=, device=}])', 'A tensor filled with 1.')
def('create', 'full', 'flare.full(sizes, value, [{dtype=, device=}])', 'A tensor filled with `value`.')
def('create', 'empty', 'flare.empty(sizes..., [{dtype=, device=}])',
  'A tensor whose contents are not initialised (fast; fill it before reading it).')
def('create', 'zeros_like', 'flare.zeros_like(x, [{dtype=}])', 'Zeros with the shape (and dtype) of x.')
def('create', 'ones_like', 'flare.ones_like(x, [{dtype=}])', 'Ones with the shape (and dtype) of x.')
def('create', 'full_like', 'flare.full_like(x, value, [{dtype=}])', '`value` everywhere, with the shape of x.')
def('create', 'empty_like', 'flare.empty_like(x, [{dtype=}])', 'An uninitialised tensor shaped like x.')
def('create', 'rand', 'flare.rand(sizes..., [{dtype=}])', 'Uniform random numbers in [0, 1).')
def('create', 'randn', 'flare.randn(sizes..., [{dtype=}])',
  'Random numbers from the standard normal distribution (mean 0, standard deviation 1).\n' ..
  'Reproducible with flare.manual_seed(n). Example: flare.randn(2, 3)')
def('create', 'randint', 'flare.randint(low, high, sizes, [{dtype=}])',
  'Random integers in [low, high) (int64 by default).')
def('create', 'rand_like', 'flare.rand_like(x)', 'Uniform random numbers shaped like x.')
def('create', 'randn_like', 'flare.randn_like(x)', 'Normal random numbers shaped like x.')
def('create', 'randperm', 'flare.randperm(n, [{dtype=}])', 'A random permutation of 1..n (int64).')
def('create', 'arange', 'flare.arange([start,] end, [step], [{dtype=}])',
  'Values from start (default 0) up to but excluding end, by step (default 1), as PyTorch.')
def('create', 'linspace', 'flare.linspace(start, end, n, [{dtype=}])', 'n evenly spaced values from start to end inclusive.')
def('create', 'eye', 'flare.eye(n, [m], [{dtype=}])', 'The n x m identity matrix (m = n by default).')
def('create', 'manual_seed', 'flare.manual_seed(seed)', 'Seeds the random number generator, for reproducible runs.')
def('create', 'get_rng_state', 'flare.get_rng_state() -> state', 'The random generator\'s state, to restore later.')
def('create', 'set_rng_state', 'flare.set_rng_state(state)', 'Restores a state from flare.get_rng_state().')
def('create', 'uniform_', 'x:uniform_([low, high])', 'Fills x in place with uniform random numbers in [low, high) (default [0, 1)).')
def('create', 'normal_', 'x:normal_([mean, std])', 'Fills x in place with normal random numbers (default mean 0, std 1).')
def('create', 'random_', 'x:random_(low, high)', 'Fills x in place with random integers in [low, high).')
def('create', 'bernoulli_', 'x:bernoulli_(p)', 'Fills x in place with 1 with probability p, else 0.')
def('create', 'fill_', 'x:fill_(value)', 'Sets every element of x to value; returns x.')
def('create', 'zero_', 'x:zero_()', 'Sets every element of x to 0; returns x.')
def('create', 'clone', 'x:clone() · flare.clone(x)', 'A copy of x with its own storage (contiguous).')
def('create', 'copy_', 'x:copy_(src)', 'Copies src into x (broadcast to x\'s shape, cast to x\'s dtype); returns x.')

-- properties and conversions
def('info', 'size', 'x:size([dim]) -> sizes | n', 'The sizes of x as a list {2, 3}, or the size of one dimension (1-based).')
def('info', 'stride', 'x:stride([dim])', 'The strides of x, in elements.')
def('info', 'dim', 'x:dim()', 'The number of dimensions of x.')
def('info', 'numel', 'x:numel() · flare.numel(x)', 'The number of elements of x.')
def('info', 'dtype', 'x:dtype()', "The element type: 'float32', 'float64', 'int64', 'int32', 'uint8' or 'bool'.")
def('info', 'type', 'x:type()', "The Torch7-style type name, e.g. 'flare.FloatTensor'.")
def('info', 'device', 'x:device()', "Where the data lives: 'cpu' or 'cuda:0'.")
def('info', 'cuda', 'x:cuda()', 'A copy of x on the GPU (x itself when it is there already). Gradients flow back to x.')
def('info', 'cpu', 'x:cpu()', 'A copy of x in host memory (x itself when it is there already). Gradients flow back to x.')
def('info', 'is_cuda', 'x:is_cuda()', 'Whether x lives on the GPU.')
def('info', 'pin_memory', 'x:pin_memory()', 'A copy of the CPU tensor x in page-locked memory: faster copies to the GPU.')
def('info', 'is_pinned', 'x:is_pinned()', 'Whether x is in page-locked host memory.')
def('info', 'is_contiguous', 'x:is_contiguous()', 'Whether x\'s elements are laid out densely in row-major order.')
def('info', 'storage_offset', 'x:storage_offset()', 'The offset of x\'s first element in its storage, in elements.')
def('info', 'data_ptr', 'x:data_ptr()', 'The address of x\'s first element (two views share storage when related).')
def('info', 'nbytes', 'x:nbytes()', 'The bytes x\'s elements take: numel times the element size.')
def('info', 'item', 'x:item()', 'The value of a one-element tensor as a Lua number (or boolean); a GPU tensor is read through the host.')
def('info', 'totable', 'x:totable() · x:tolist()', 'The values of x as nested Lua tables (a GPU tensor is copied to the host first).')
def('info', 'set_', 'x:set_(y) -> x',
  "x becomes a view of y's data (its storage, dtype, shape and strides) and stays the same object,\n" ..
  'so every reference to x sees the change; requires_grad stays. nn.Module:to moves parameters this\n' ..
  'way, so an optimizer built before model:cuda() keeps working. Refused on a tensor with a grad_fn,\n' ..
  'and on a leaf that requires grad unless under flare.no_grad(); a gradient that no longer fits is dropped.')
def('info', 'is_tensor', 'flare.is_tensor(v)', 'Whether v is a flare tensor.')
def('info', 'to', "x:to(dtype | 'cpu' | 'cuda' | {dtype=, device=})", 'x converted to another dtype or moved to another device; x itself when nothing changes.')
def('info', 'float', 'x:float()', 'x as float32 (x itself if it already is).')
def('info', 'double', 'x:double()', 'x as float64.')
def('info', 'long', 'x:long()', 'x as int64.')
def('info', 'int', 'x:int()', 'x as int32.')
def('info', 'byte', 'x:byte()', 'x as uint8.')
def('info', 'bool', 'x:bool()', 'x as bool (non-zero is true).')
def('info', 'contiguous', 'x:contiguous()', 'x itself if contiguous, else a contiguous copy.')

-- elementwise
local binary = {
  add = 'a + b', sub = 'a - b', mul = 'a * b', div = 'a / b (true division: integers give float32)',
  pow = 'a ^ b', maximum = 'the larger of a and b (NaN propagates)', minimum = 'the smaller of a and b',
  fmod = 'the remainder of a / b, with the sign of a (C fmod)', atan2 = 'atan(a / b) in the right quadrant',
  eq = 'a == b (bool)', ne = 'a ~= b (bool)', lt = 'a < b (bool)', le = 'a <= b (bool)',
  gt = 'a > b (bool)', ge = 'a >= b (bool)', logical_and = 'a and b (bool)',
  logical_or = 'a or b (bool)', logical_xor = 'a xor b (bool)',
}
for name, what in pairs(binary) do
  def('math', name, string.format('flare.%s(a, b) · a:%s(b)', name, name),
    'Elementwise ' .. what .. '. a or b may be a number; shapes broadcast as in PyTorch.')
end
docs.add.text = docs.add.text .. '\nAlso the operator: a + b. In place: a:add_(b).'
docs.sub.text = docs.sub.text .. '\nAlso the operator: a - b.'
docs.mul.text = docs.mul.text .. '\nAlso the operator: a * b (elementwise; matrix product is flare.matmul).'
docs.div.text = docs.div.text .. '\nAlso the operator: a / b.'
docs.pow.text = docs.pow.text .. '\nAlso the operator: a ^ b.'
local unary = {
  neg = '-x', abs = '|x|', exp = 'e^x', log = 'the natural logarithm', log1p = 'log(1 + x), accurate near 0',
  expm1 = 'e^x - 1, accurate near 0', sqrt = 'the square root', rsqrt = '1 / sqrt(x)',
  sin = 'sine', cos = 'cosine', tan = 'tangent', asin = 'arcsine', acos = 'arccosine',
  atan = 'arctangent', sinh = 'hyperbolic sine', cosh = 'hyperbolic cosine', tanh = 'hyperbolic tangent',
  sigmoid = '1 / (1 + e^-x)', relu = 'max(x, 0)', gelu = 'the Gaussian error linear unit (erf form)',
  silu = 'x * sigmoid(x)', softplus = 'log(1 + e^x)', floor = 'rounding down', ceil = 'rounding up',
  round = 'rounding to nearest, halves to even', trunc = 'rounding toward zero',
  sign = '-1, 0 or 1 by the sign of x', reciprocal = '1 / x', square = 'x * x', log2 = 'the base-2 logarithm',
  erf = 'the error function', logical_not = 'not x (bool)', isnan = 'whether x is NaN (bool)',
  isinf = 'whether x is infinite (bool)', isfinite = 'whether x is finite (bool)',
}
for name, what in pairs(unary) do
  def('math', name, string.format('flare.%s(x) · x:%s()', name, name), 'Elementwise ' .. what .. '.')
end
docs.neg.text = docs.neg.text .. ' Also the operator: -x.'
def('math', 'clamp', 'flare.clamp(x, [min], [max]) · x:clamp(min, max)',
  'Limits every element to [min, max]; nil leaves that side open. Also clamp_min, clamp_max.')
def('math', 'clamp_min', 'x:clamp_min(min)', 'max(x, min), elementwise.')
def('math', 'clamp_max', 'x:clamp_max(max)', 'min(x, max), elementwise.')
def('math', 'where', 'flare.where(cond, a, b)', 'Elementwise: a where cond is true, else b (a and b may be numbers).')

-- reductions
local function reduction(name, what, extra)
  def('reduce', name, string.format('x:%s([dim], [keepdim]) · flare.%s(x, ...)', name, name),
    what .. ' over all elements (a 0-dim tensor), or along dim (1-based, negative from the end);\n' ..
    'keepdim keeps that dimension with size 1. Options table form: x:' .. name ..
    '{dim = 2, keepdim = true}.' .. (extra and ('\n' .. extra) or ''))
end
reduction('sum', 'The sum', 'Integer and bool tensors sum to int64.')
reduction('mean', 'The mean', 'Needs a float tensor.')
reduction('prod', 'The product')
reduction('max', 'The largest value', 'With dim, returns the values and their 1-based indices (int64).')
reduction('min', 'The smallest value', 'With dim, returns the values and their 1-based indices (int64).')
reduction('amax', 'The largest value (values only, also over several dims)')
reduction('amin', 'The smallest value (values only, also over several dims)')
reduction('var', 'The variance (Bessel-corrected unless {unbiased = false})')
reduction('std', 'The standard deviation (Bessel-corrected unless {unbiased = false})')
reduction('logsumexp', 'log(sum(exp(x))), computed without overflow')
reduction('all', 'Whether every element is true (non-zero)')
reduction('any', 'Whether some element is true (non-zero)')
reduction('argmax', 'The 1-based index of the largest value')
reduction('argmin', 'The 1-based index of the smallest value')
def('reduce', 'norm', 'x:norm([p], [dim], [keepdim])', "The p-norm (p = 2 by default; 1, math.huge, any p, or 'fro').")
def('reduce', 'cumsum', 'x:cumsum(dim)', 'Running sums along dim.')
def('reduce', 'cumprod', 'x:cumprod(dim)', 'Running products along dim.')
def('reduce', 'sort', 'x:sort([dim], [descending]) -> values, indices',
  'Sorts along dim (the last by default), stably; indices are 1-based. NaN sorts as the largest.')
def('reduce', 'topk', 'x:topk(k, [dim], [largest], [sorted]) -> values, indices',
  'The k largest (or smallest) elements along dim, with their 1-based indices.')
def('reduce', 'softmax', 'x:softmax(dim) · flare.softmax(x, dim)', 'exp(x) / sum(exp(x)) along dim, computed stably.')
def('reduce', 'log_softmax', 'x:log_softmax(dim)', 'log(softmax(x)) along dim, computed stably.')

-- views
def('view', 'view', 'x:view(sizes...)', 'The same data with another shape, without copying (one size may be -1);\nan error if x\'s layout does not allow it (then use reshape).')
def('view', 'view_as', 'x:view_as(y)', 'x:view(y:size()).')
def('view', 'reshape', 'x:reshape(sizes...) · flare.reshape(x, sizes)', 'x with another shape: a view when possible, else a copy. One size may be -1.')
def('view', 'reshape_as', 'x:reshape_as(y)', 'x:reshape(y:size()).')
def('view', 'transpose', 'x:transpose(d1, d2)', 'A view with dimensions d1 and d2 swapped.')
def('view', 'permute', 'x:permute(dims...)', 'A view with the dimensions in the given order, e.g. x:permute(3, 1, 2).')
def('view', 't', 'x:t()', 'The transpose of a matrix (a view).')
def('view', 'narrow', 'x:narrow(dim, start, length)', 'A view of `length` elements of dim from `start` (1-based).')
def('view', 'select', 'x:select(dim, index)', 'A view of one slice (the dimension removed); x[i] is x:select(1, i).')
def('view', 'squeeze', 'x:squeeze([dim])', 'A view without the size-1 dimensions (or just dim).')
def('view', 'unsqueeze', 'x:unsqueeze(dim)', 'A view with a new size-1 dimension at dim.')
def('view', 'expand', 'x:expand(sizes...)', 'A view with size-1 dimensions repeated (stride 0); -1 keeps a size.')
def('view', 'expand_as', 'x:expand_as(y)', 'x:expand(y:size()).')
def('view', 'flatten', 'x:flatten([start], [end])', 'Merges dimensions start..end (all by default) into one.')
def('view', 'split', 'x:split(size | sizes, [dim]) -> {tensors}', 'Views of consecutive pieces of the given size(s) along dim.')
def('view', 'chunk', 'x:chunk(n, [dim]) -> {tensors}', 'n views of (nearly) equal size along dim.')
def('view', 'unbind', 'x:unbind([dim]) -> {tensors}', 'Every slice along dim, as a table of views.')
def('view', 'unfold', 'x:unfold(dim, size, step)', 'A view of all windows of `size` along dim, `step` apart (a new last dimension).')
def('view', 'cat', 'flare.cat({a, b, ...}, [dim])', 'Joins tensors along an existing dimension (copying). Also flare.concat.')
def('view', 'stack', 'flare.stack({a, b, ...}, [dim])', 'Joins same-shaped tensors along a new dimension.')

-- indexing
def('index', 'index_select', 'x:index_select(dim, idx)', 'The slices of x along dim at the (1-based) indices in idx.')
def('index', 'gather', 'x:gather(dim, idx)', 'out[i][j] = x[idx[i][j]][j] along dim (1-based indices), as PyTorch.')
def('index', 'scatter', 'x:scatter(dim, idx, src | value)', 'A copy of x with src written at the indices along dim. In place: scatter_.')
def('index', 'scatter_add', 'x:scatter_add(dim, idx, src)', 'A copy of x with src added at the indices along dim (repeats accumulate).')
def('index', 'masked_fill', 'x:masked_fill(mask, value)', 'A copy of x with value where the bool mask is true. In place: masked_fill_.')
def('index', 'masked_select', 'x:masked_select(mask)', 'The elements where mask is true, as a 1-D tensor. Also x[mask].')
def('index', 'masked_scatter', 'x:masked_scatter(mask, src)', 'A copy of x with the mask\'s true places filled from src in order.')
def('index', 'nonzero', 'x:nonzero()', 'The 1-based indices of the non-zero elements, as an N x dim int64 tensor.')
def('index', 'index_fill', 'x:index_fill(dim, idx, value)', 'A copy of x with the slices at idx along dim set to value.')
def('index', 'index_add', 'x:index_add(dim, idx, src)', 'A copy of x with the slices of src added at idx along dim.')
def('index', 'index_copy', 'x:index_copy(dim, idx, src)', 'A copy of x with the slices of src copied to idx along dim.')

-- linear algebra
def('linalg', 'matmul', 'flare.matmul(a, b) · a:matmul(b)',
  'The matrix product with PyTorch\'s rules: vector·vector is a dot product, matrix·vector\n' ..
  'a matrix-vector product, and batched inputs broadcast over their leading dimensions.')
def('linalg', 'mm', 'flare.mm(a, b)', 'The product of two matrices.')
def('linalg', 'bmm', 'flare.bmm(a, b)', 'Batched matrix product of (B, n, m) and (B, m, p).')
def('linalg', 'mv', 'flare.mv(m, v)', 'Matrix times vector.')
def('linalg', 'dot', 'flare.dot(a, b)', 'The dot product of two vectors (a 0-dim tensor).')
def('linalg', 'outer', 'flare.outer(a, b)', 'The outer product of two vectors. Also flare.ger.')
def('linalg', 'addmm', 'flare.addmm(c, a, b, [{beta=1, alpha=1}])', 'beta * c + alpha * (a · b).')

-- autograd
def('autograd', 'requires_grad', 'x:requires_grad([on]) · x:requires_grad_([on])',
  'Marks x (a float leaf tensor) as needing gradients; ops on it record a graph. Returns x.')
def('autograd', 'wants_grad', 'x:wants_grad()', 'Whether x requires gradients.')
def('autograd', 'backward', 'loss:backward([grad], [{retain_graph=}])',
  'Computes the gradients of loss with respect to the leaves; they accumulate in leaf.grad.')
def('autograd', 'detach', 'x:detach()', 'x without its graph: shares the data, requires no gradient.')
def('autograd', 'zero_grad', 'x:zero_grad()', 'Clears x.grad.')
def('autograd', 'register_hook', 'x:register_hook(fn) -> handle',
  'fn(grad) runs when the gradient with respect to x is computed in backward, and may return\n' ..
  'a replacement gradient. handle:remove() unregisters it. x must require grad.')
def('autograd', 'no_grad', 'flare.no_grad()', 'Turns graph recording off until the returned guard is closed:\nlocal _ <close> = flare.no_grad()')
def('autograd', 'enable_grad', 'flare.enable_grad()', 'Turns graph recording back on inside a no_grad scope (a to-be-closed guard).')
def('autograd', 'is_grad_enabled', 'flare.is_grad_enabled()', 'Whether ops record a graph now.')
def('autograd', 'set_grad_enabled', 'flare.set_grad_enabled(on)', 'Turns graph recording on or off.')

-- losses
def('loss', 'cross_entropy', 'flare.cross_entropy(logits, targets, [{reduction=}])',
  "Softmax cross-entropy of (N, C) logits against 1-based class indices; reduction 'mean' (default), 'sum' or 'none'.")
def('loss', 'nll_loss', 'flare.nll_loss(log_probs, targets, [{reduction=}])', 'Negative log-likelihood of 1-based class indices.')
def('loss', 'mse_loss', 'flare.mse_loss(input, target, [{reduction=}])', 'Mean squared error.')
def('loss', 'binary_cross_entropy_with_logits', 'flare.binary_cross_entropy_with_logits(logits, targets, [{reduction=}])',
  'Sigmoid and binary cross-entropy in one stable step.')

-- convolution and pooling
def('nn', 'conv1d', 'flare.conv1d(x, w, [b], [{stride, padding, dilation, groups}])',
  '1-D convolution of x (N, C, L) with weights w (O, C/groups, K) and optional bias b (O).')
def('nn', 'conv2d', 'flare.conv2d(x, w, [b], [{stride, padding, dilation, groups}])',
  "2-D convolution of x (N, C, H, W) with weights w (O, C/groups, kH, kW) and optional bias b (O).\n" ..
  "Sizes are a number or {h, w}; padding may also be 'same' or 'valid'.")
def('nn', 'conv_transpose2d', 'flare.conv_transpose2d(x, w, [b], [{stride, padding, output_padding, groups, dilation}])',
  'The transposed 2-D convolution (the gradient of conv2d with respect to its input): w is (C, O/groups, kH, kW).')
def('nn', 'max_pool1d', 'flare.max_pool1d(x, kernel, [{stride, padding, dilation, ceil_mode, return_indices}])',
  'The maximum over windows of x (N, C, L); the stride defaults to the kernel size. With\n' ..
  'return_indices, also the 1-based positions of the maxima within each plane.')
def('nn', 'max_pool2d', 'flare.max_pool2d(x, kernel, [{stride, padding, dilation, ceil_mode, return_indices}])',
  'The maximum over windows of x (N, C, H, W); the stride defaults to the kernel size. With\n' ..
  'return_indices, also the 1-based positions of the maxima within each plane.')
def('nn', 'avg_pool2d', 'flare.avg_pool2d(x, kernel, [{stride, padding, ceil_mode, count_include_pad, divisor_override}])',
  'The mean over windows of x (N, C, H, W); the stride defaults to the kernel size.')
def('nn', 'adaptive_avg_pool2d', 'flare.adaptive_avg_pool2d(x, output_size)',
  'Mean pooling of x (N, C, H, W) down to output_size (a number or {h, w}), windows chosen as PyTorch does.')

-- recurrent cells and layers (vm/rnn.c)
def('nn', 'fused_lstm_cell', 'flare.fused_lstm_cell(gi, gh, c) -> h, c',
  "One LSTM time step with its gate math fused (PyTorch's gate order i, f, g, o): gi and gh (N, 4H)\n" ..
  'are the input and hidden projections with their biases, c (N, H) the cell state. nn.LSTMCell and\n' ..
  'nn.functional.lstm_step run on it.')
def('nn', 'fused_gru_cell', 'flare.fused_gru_cell(gi, gh, h) -> h',
  'One GRU time step with its gate math fused (gates r, z, n): gi and gh (N, 3H) are the input and\n' ..
  'hidden projections with their biases, h (N, H) the state. nn.GRUCell and nn.functional.gru_step run on it.')
def('nn', 'fused_rnn_layer', 'flare.fused_rnn_layer(mode, gi, hh, state0, [reverse]) -> out, h_n, [c_n]',
  "A whole recurrent layer in one op, mode 'lstm', 'gru', 'tanh' or 'relu': gi (T, N, G) is the input\n" ..
  'projection of every step, hh is W_hh (G, H) or W_hh with b_hh as an extra last column (G, H + 1),\n' ..
  "state0 is h0 (N, H), or h0 and c0 stacked (2, N, H) for 'lstm'. Returns out (T, N, H), h_n and, for\n" ..
  "'lstm', c_n; its backward runs through time in C. nn.RNN, nn.LSTM and nn.GRU run on it.")

-- files and bytes
def('io', 'read_file', 'flare.read_file(path, [{max_bytes = 2^32}]) -> string',
  'The bytes of a file as a Lua string; gzip-compressed files are decompressed on the way.')
def('io', 'warp_affine', "flare.warp_affine(x, theta, [{mode = 'bilinear' | 'nearest', fill = 0, size}])",
  'Resamples images x (N, C, H, W) through 2x3 affine matrices theta (N, 2, 3) in normalized\n' ..
  "coordinates, as PyTorch's affine_grid + grid_sample (align_corners = false); used by the data\n" ..
  'transforms. Not differentiable.')
def('io', 'frombuffer', "flare.frombuffer(bytes, [{dtype = 'uint8', offset = 0, shape =, byteorder = 'little', device =}])",
  'A tensor holding a copy of the bytes of a Lua string, read as dtype from offset; the\n' ..
  'shape defaults to 1-D over the remaining bytes. byteorder may be \'big\'; device = \'cuda\' puts it on the GPU.')

-- system
def('system', 'set_num_threads', 'flare.set_num_threads(n)', 'Threads used by kernels and OpenBLAS.')
def('system', 'get_num_threads', 'flare.get_num_threads()', 'Threads used by kernels and OpenBLAS.')
def('system', 'blas_info', 'flare.blas_info()', 'The BLAS library, its CPU kernels and threads.')
def('system', 'bytes_allocated', 'flare.bytes_allocated()', 'Bytes of tensor data allocated now.')
def('system', 'clock', 'flare.clock()', 'Wall-clock seconds (monotonic), for timing.')
def('system', 'timeit', 'flare.timeit(f, [n], [{warmup=1, seconds=0.5}]) -> timing',
  'Calls f() n times (or for about 0.5 s) and returns seconds per call: a table\n' ..
  '{median, min, mean, max, total, n} that prints as one line. Example:\n' ..
  '  a = flare.randn(512, 512); flare.timeit(function() return a:matmul(a) end)')
def('system', 'uninterruptible', 'flare.uninterruptible(f, ...)',
  'Calls f(...) so that Ctrl-C cannot stop it half-way: an interrupt arriving meanwhile\n' ..
  'takes effect when f returns. Optimizer steps and file writes run this way.')
def('system', 'doc', 'flare.doc(value, text) -> value', 'Attaches documentation to a Lua function or table, shown by help(value).')
def('system', 'format', 'flare.format', 'The printing module: flare.format.options (threshold, edgeitems, precision,\nlinewidth, items, depth) tunes how values print.')
def('system', 'version', 'flare.version', 'The version string.')
def('system', 'open_globals', 'flare.open_globals()', 'Sets flare and its modules as globals (the executable does it at start-up).')
def('system', 'repl_print', 'flare.repl_print(...)', 'Prints values as the prompt does, and sets _ to the first.')
def('system', 'autograd', 'flare.autograd', 'Gradient tools: gradcheck (finite differences), grad, detect_anomaly.')

-- flare.cuda: its C functions are documented by value (their names are not flare.name), when
-- this module loads; flare.cuda.manual_seed and flare.autocast carry their own (init.lua).
M.cuda_docs = {
  is_available = { 'flare.cuda.is_available() -> boolean',
    'Whether a GPU can be used (the CUDA library loaded and a device found). FLARE_CUDA=0 turns\n' ..
    'CUDA off; FLARE_CUDA=emu runs the CUDA kernels on the CPU emulator (for tests).' },
  why_unavailable = { 'flare.cuda.why_unavailable() -> string | nil', 'Why no GPU can be used; nil when one can.' },
  is_emulated = { 'flare.cuda.is_emulated() -> boolean', 'Whether "the GPU" is the CPU emulator (FLARE_CUDA=emu).' },
  device_count = { 'flare.cuda.device_count() -> n', 'The number of GPUs (flare uses the first, cuda:0).' },
  device_info = { 'flare.cuda.device_info([i = 1]) -> {name, memory, capability}',
    'The name, memory (bytes) and compute capability ("9.0") of GPU i.' },
  memory_stats = { 'flare.cuda.memory_stats() -> table',
    "The caching allocator's counters: allocated (bytes in tensors now), reserved (held from the\n" ..
    'driver), peak_allocated, peak_reserved, device_allocs, device_frees, cache_hits,\n' ..
    "cache_flushes, device_free and device_total (the driver's view)." },
  reset_peak_memory_stats = { 'flare.cuda.reset_peak_memory_stats()', 'Restarts peak_allocated and peak_reserved from now.' },
  synchronize = { 'flare.cuda.synchronize()', 'Waits until the GPU has finished all queued work (for timing).' },
  set_allow_tf32 = { 'flare.cuda.set_allow_tf32(on) -> previous',
    'Lets float32 matrix products on the GPU use TF32 tensor cores (faster, ~1e-3 relative\n' ..
    'precision). Off by default, as in PyTorch. Returns the setting before.' },
  empty_cache = { 'flare.cuda.empty_cache()',
    'Returns the cached, unused device memory to the driver (after a full garbage collection).' },
}

do
  local f = flare()
  local cuda = rawget(f, 'cuda')
  if type(cuda) == 'table' then
    for name, d in pairs(M.cuda_docs) do
      if type(cuda[name]) == 'function' and not f._docstrings[cuda[name]] then
        f._docstrings[cuda[name]] = d[1] .. '\n\n' .. d[2]
      end
    end
    if not f._docstrings[cuda] then
      f._docstrings[cuda] = 'flare.cuda: the GPU. Tensors move with x:cuda(), x:cpu(), x:to(\'cuda\') or\n' ..
        "{device = 'cuda'} when created; models with m:cuda() / m:to('cuda') (in place). Values read\n" ..
        'from Lua (item, totable, printing) come through the host. One random generator serves all devices.'
    end
  end
end

-- prompt
def('prompt', 'help', 'help([x | "name"]) · ?name',
  'Shows the documentation of a function, module or class, or this overview. ?x at the\nprompt is help("x").')
def('prompt', 'who', 'who()', 'Lists the globals you defined, with their types and sizes.')

-- ---------------------------------------------------------------- finding documentation

local function paint(kind, s)
  local ok, repl = pcall(require, 'flare.repl')
  return format.paint({ color = ok and repl.options.color }, kind, s)
end

-- The doc entry for a bare name, following aliases and in-place forms.
function M.lookup(name)
  if docs[name] then return docs[name], name end
  local target = M.aliases[name]
  if target and docs[target] then
    local d = docs[target]
    return { cat = d.cat, sig = d.sig, text = d.text .. '\n(' .. name .. ' is another name for ' .. target .. '.)' }, name
  end
  local base = name:match('^(.+)_$')
  if base and (docs[base] or M.aliases[base]) then
    local d = M.lookup(base)
    return { cat = d.cat, sig = 'x:' .. name .. '(...)',
             text = 'In-place form of x:' .. base .. '(...): writes the result into x and returns x.\n' ..
                    d.sig .. '\n' .. d.text }, name
  end
  return nil
end

-- The comment block just above a Lua function's definition (`--- ...` or `-- ...` lines).
local function source_comment(f)
  local info = debug.getinfo(f, 'S')
  if not info or info.what ~= 'Lua' or info.source:sub(1, 1) ~= '@' or info.linedefined < 2 then return nil end
  local file = io.open(info.source:sub(2), 'r')
  if not file then return nil end
  local lines, n = {}, 0
  for line in file:lines() do
    n = n + 1
    lines[n] = line
    if n >= info.linedefined then break end
  end
  file:close()
  -- only for a definition line (function f / local function f / x.f = function), not for a
  -- function written inside an expression
  local head = lines[info.linedefined] or ''
  if not (head:match('^%s*local%s+function%s') or head:match('^%s*function%s')
          or head:match('^%s*[%w_%.%[%]\'"]+%s*=%s*function')) then
    return nil
  end
  local block = {}
  for i = info.linedefined - 1, 1, -1 do
    local text = lines[i] and lines[i]:match('^%s*%-%-%-?%s?(.*)$')
    if not text or lines[i]:match('^%s*%-%-%[') then break end
    table.insert(block, 1, text)
  end
  if #block == 0 then return nil end
  return table.concat(block, '\n')
end
M.source_comment = source_comment

-- Is t a class (a table that instances use as their metatable, e.g. nn.Linear)?
local function is_class(t)
  return type(t) == 'table' and (rawget(t, '_is_module_class') ~= nil
    or (rawget(t, '__index') == t and type(rawget(t, '__typename') or rawget(t, '__name')) == 'string'))
end
M.is_class = is_class

local function read_lines(path)
  local file = io.open(path, 'r')
  if not file then return nil end
  local lines = {}
  for line in file:lines() do lines[#lines + 1] = line end
  file:close()
  return lines
end

-- A class's documentation: the `--- Name(...)` comment block that introduces it in the file
-- defining its methods (the stdlib's convention), or nil.
local function class_comment(cls)
  local name = rawget(cls, '__typename') or rawget(cls, '__name')
  if type(name) ~= 'string' then return nil end
  local files, seen = {}, {}
  for _, v in next, cls do
    if type(v) == 'function' then
      local info = debug.getinfo(v, 'S')
      if info.source:sub(1, 1) == '@' and not seen[info.source] then
        seen[info.source] = true
        files[#files + 1] = info.source:sub(2)
      end
    end
  end
  table.sort(files)
  local escaped = name:gsub('%p', '%%%0')
  for _, strict in ipairs({ true, false }) do
    for _, path in ipairs(files) do
      local lines = read_lines(path) or {}
      for i, line in ipairs(lines) do
        local hit = strict and line:match('^%s*%-%-%-%s*' .. escaped .. '%f[^%w_]')
                    or (not strict and line:match('^%s*%-%-%-') and line:match(escaped .. '%f[^%w_]'))
        if hit then
          local block = { (line:match('^%s*%-%-%-%s?(.*)$')) }
          for j = i + 1, #lines do
            local text = lines[j]:match('^%s*%-%-%s?(.*)$')
            if not text or lines[j]:match('^%s*%-%-%-') then break end
            block[#block + 1] = text
          end
          return table.concat(block, '\n')
        end
      end
    end
  end
  return nil
end
M.class_comment = class_comment

local function function_name(f)
  return format.function_names()[f]
end

-- "flare.add", "Tensor:add" and the globals "help", "who" -> the key of their doc entry.
local function bare(name)
  return name and (name:match('^Tensor:(.+)$') or name:match('^flare%.([%w_]+)$')
                   or ((name == 'help' or name == 'who') and name))
end

-- The documentation text of a value, or nil.
function M.text_of(v, name)
  local f = flare()
  local registered = f._docstrings and f._docstrings[v]
  if registered then return registered end
  name = name or (type(v) == 'function' and function_name(v))
  local b = bare(name)
  local d = b and M.lookup(b)
  if d then return d.sig .. '\n' .. d.text end
  if type(v) == 'function' then return source_comment(v) end
  if is_class(v) then return class_comment(v) end
  if type(v) == 'table' then
    local mt = getmetatable(v)
    local class = mt and (f._docstrings[mt] or (type(rawget(mt, '__index')) == 'table' and f._docstrings[rawget(mt, '__index')]))
    if class then return class end
    if is_class(mt) then return class_comment(mt) end
  end
  return nil
end

-- ---------------------------------------------------------------- help()

local function overview()
  local f = flare()
  local lines = {
    paint('module', 'flare') .. ' ' .. f.version .. ': tensors and neural networks at a Lua 5.4 prompt.',
    '',
    'At the prompt',
    '  help(x), ?x      documentation of a function, module or class (?flare.randn, ?x:sum)',
    '  who()            the globals you defined, with types and sizes',
    '  _                the last result (only the last one is kept)',
    '  expr;            a trailing ; does not print the result',
    '  Tab              completes names, fields, methods and (inside quotes) file names',
    '  Ctrl-R           searches the history; Ctrl-C interrupts; Ctrl-D quits',
  }
  for _, c in ipairs(require('flare.repl').command_help) do
    lines[#lines + 1] = string.format('  %-16s %s', c[1], c[2])
  end
  lines[#lines + 1] = ''
  lines[#lines + 1] = 'Functions (flare.name(...) or, for tensors, x:name(...)):'
  local bycat = {}
  for name, d in pairs(docs) do
    local exists = rawget(f, name) ~= nil or (f._methods and f._methods[name] ~= nil)
    if exists and d.cat ~= 'prompt' then
      bycat[d.cat] = bycat[d.cat] or {}
      table.insert(bycat[d.cat], name)
    end
  end
  for _, c in ipairs(M.categories) do
    local names = bycat[c[1]]
    if names then
      table.sort(names)
      lines[#lines + 1] = paint('module', c[2])
      local line = '   '
      for _, n in ipairs(names) do
        if #line + #n + 1 > 96 then
          lines[#lines + 1] = line
          line = '   '
        end
        line = line .. ' ' .. n
      end
      lines[#lines + 1] = line
    end
  end
  local mods = {}
  for k, v in pairs(f) do
    if type(v) == 'table' and type(k) == 'string' and k:sub(1, 1) ~= '_' and k ~= 'format' then mods[#mods + 1] = 'flare.' .. k end
  end
  table.sort(mods)
  if #mods > 0 then
    lines[#lines + 1] = ''
    lines[#lines + 1] = 'Modules: ' .. table.concat(mods, ', ') .. ' (help(flare.name) lists what each has)'
  end
  lines[#lines + 1] = 'In-place forms end in _ (x:add_(y)). Dims and indices are 1-based.'
  return table.concat(lines, '\n')
end

-- The first sentence of a documentation text, without its leading signature.
function M.summary(text)
  -- drop the signatures it starts with ("nn.ReLU(), nn.SiLU(): ...", "nn.Sequential {...}")
  repeat
    local before = text
    text = text:gsub('^%s*,?%s*[%w_%.:]+%s*%b()', ''):gsub('^%s*,?%s*[%w_%.:]+%s*%b{}', '')
  until text == before
  text = text:gsub('^%s*%->[^\n]*', ''):gsub('^%s*%b()', ''):gsub('^%s*[:,]?%s*', '')
  text = text:gsub('%s*\n%s*', ' ')
  local sentence = text:match('^(.-%.)%s') or text
  if #sentence > 80 then sentence = sentence:sub(1, 77) .. '...' end
  return sentence
end

-- The functions of a library table (flare, flare.plot, ...) with one line each.
local function library_text(t, prefix)
  local f = flare()
  local names = {}
  for k, v in pairs(t) do
    if type(k) == 'string' and k:sub(1, 1) ~= '_' and (type(v) == 'function' or is_class(v)) then
      names[#names + 1] = k
    end
  end
  table.sort(names)
  local lines = {}
  local own = f._docstrings[t]
  if own then lines[#lines + 1] = own; lines[#lines + 1] = '' end
  local width = 0
  for _, k in ipairs(names) do width = math.max(width, #prefix + #k) end
  for _, k in ipairs(names) do
    local text = M.text_of(t[k], prefix .. k)
    local pad = string.rep(' ', width - #prefix - #k + 2)
    lines[#lines + 1] = '  ' .. paint('function', prefix .. k) .. pad .. (text and M.summary(text) or '')
  end
  return table.concat(lines, '\n')
end

local function tensor_text()
  local f = flare()
  local lines = { paint('module', 'flare.Tensor') .. ': an n-dimensional array of numbers (a view over shared storage).',
    'Methods (x:name(...)); ?x:name or help("Tensor:name") for one of them:' }
  local bycat = {}
  for name in pairs(f._methods) do
    local d = M.lookup(name)
    local cat = d and d.cat or 'other'
    bycat[cat] = bycat[cat] or {}
    table.insert(bycat[cat], name)
  end
  local cats = {}
  for _, c in ipairs(M.categories) do cats[#cats + 1] = c end
  cats[#cats + 1] = { 'other', 'Other' }
  for _, c in ipairs(cats) do
    local names = bycat[c[1]]
    if names then
      table.sort(names)
      lines[#lines + 1] = '  ' .. c[2] .. ':'
      local line = '   '
      for _, n in ipairs(names) do
        if #line + #n + 1 > 96 then lines[#lines + 1] = line; line = '   ' end
        line = line .. ' ' .. n
      end
      lines[#lines + 1] = line
    end
  end
  return table.concat(lines, '\n')
end

-- Resolves "flare.randn", "x:sum", "Tensor:sum", "randn", "nn.Linear" to a value and name.
local function resolve_name(name)
  local obj, method = name:match('^([%w_%.]+):([%w_]+)$')
  local f = flare()
  if obj then
    if obj == 'Tensor' then return f._methods[method], 'Tensor:' .. method end
    local v = require('flare.repl').resolve(obj)
    if f.is_tensor(v) then return f._methods[method], 'Tensor:' .. method end
    if type(v) == 'table' then
      local ok, m = pcall(function() return v[method] end)
      if ok then return m, name end
    end
    return nil
  end
  local v = require('flare.repl').resolve(name)
  if v ~= nil then return v, name end
  if rawget(f, name) ~= nil then return f[name], 'flare.' .. name end
  if f._methods[name] then return f._methods[name], 'Tensor:' .. name end
  return nil
end

-- The help text for a value or a name (what help() prints).
function M.text(x)
  local f = flare()
  local name
  if x == nil then return overview() end
  if type(x) == 'string' then
    name = x
    local v, full = resolve_name(x)
    if v == nil then
      local b = bare(x) or x:match(':([%w_]+)$') or x
      local d = M.lookup(b)
      if d then return d.sig .. '\n' .. d.text end
      local near = {}
      for k in pairs(docs) do if k:find(b, 1, true) then near[#near + 1] = k end end
      table.sort(near)
      return 'no help for ' .. x .. (#near > 0 and ('; related: ' .. table.concat(near, ', ', 1, math.min(#near, 12))) or '')
    end
    x, name = v, full
  end
  if f.is_tensor(x) then return format.footer(x) .. '\n' .. tensor_text() end
  if x == f then return overview() end
  if is_class(x) then
    local parts = { M.text_of(x, name) or (rawget(x, '__typename') or name or 'class') .. ': no documentation' }
    local methods = library_text(x, (rawget(x, '__typename') or 'class') .. ':')
    if methods ~= '' then parts[#parts + 1] = 'Methods defined by this class:\n' .. methods end
    return table.concat(parts, '\n')
  end
  if type(x) == 'table' then
    if format.is_module(x) then
      local parts = {}
      local t = M.text_of(x, name)
      if t then parts[#parts + 1] = t end
      parts[#parts + 1] = format.module(x, { color = require('flare.repl').options.color })
      return table.concat(parts, '\n')
    end
    local prefix = (name and name:match('^[%w_%.]+$') and name .. '.') or ''
    if prefix == '' then
      for k, v in pairs(f) do if v == x and type(k) == 'string' then prefix = 'flare.' .. k .. '.' end end
    end
    local t = library_text(x, prefix)
    if t ~= '' then return t end
  end
  if type(x) == 'function' and not name then name = function_name(x) end
  local t = M.text_of(x, name)
  if t then return t end
  if type(x) == 'function' and name and not name:find('^flare') and not name:find('^Tensor:')
     and debug.getinfo(x, 'S').what == 'C' then
    return name .. ': a function of Lua\'s standard library; see the Lua 5.4 manual:\n' ..
           'https://www.lua.org/manual/5.4/manual.html#pdf-' .. name
  end
  if type(x) == 'function' then
    local info = debug.getinfo(x, 'Su')
    if info.what == 'Lua' then
      local params = {}
      for i = 1, info.nparams do params[i] = debug.getlocal(x, i) end
      if info.isvararg then params[#params + 1] = '...' end
      return string.format('%s(%s), defined at %s:%d (no documentation)', name or 'function',
        table.concat(params, ', '), info.short_src, info.linedefined)
    end
    return (name or 'this function') .. ': no documentation'
  end
  return string.format('%s: a %s value (%s)', name or 'this', type(x), format.inline(x, {}))
end

function M.help(x)
  print(M.text(x))
end

-- ---------------------------------------------------------------- who()

local standard_globals = {}
for _, k in ipairs({ '_G', '_VERSION', 'assert', 'collectgarbage', 'dofile', 'error', 'getmetatable',
  'ipairs', 'load', 'loadfile', 'next', 'pairs', 'pcall', 'print', 'rawequal', 'rawget', 'rawlen',
  'rawset', 'require', 'select', 'setmetatable', 'tonumber', 'tostring', 'type', 'warn', 'xpcall',
  'coroutine', 'debug', 'io', 'math', 'os', 'package', 'string', 'table', 'utf8', 'arg', '_',
  'flare', 'help', 'who' }) do standard_globals[k] = true end

local function bytes_text(n)
  if n < 1024 then return n .. ' B' end
  if n < 1024 ^ 2 then return string.format('%.1f KiB', n / 1024) end
  if n < 1024 ^ 3 then return string.format('%.1f MiB', n / 1024 ^ 2) end
  return string.format('%.2f GiB', n / 1024 ^ 3)
end
M.bytes_text = bytes_text

-- One row of who(): type and size of a value.
function M.describe(v)
  local f = flare()
  if f.is_tensor(v) then
    local dims = v:size()
    local shape = #dims == 0 and 'scalar' or table.concat(dims, 'x')
    return format.footer(v):match('flare%.(%a+)'), shape .. ', ' .. bytes_text(v:nbytes())
  end
  if format.is_module(v) then
    local n = format.count_parameters(v)
    local name = format.inline(v, {}):match('^[^(%s]+')
    return name, (n and format.count(n) .. ' parameters' or '')
  end
  local t = type(v)
  if t == 'table' then
    local n = 0
    for _ in next, v do n = n + 1 end
    return 'table', n .. (n == 1 and ' entry' or ' entries')
  elseif t == 'string' then
    return 'string', #v .. ' bytes'
  elseif t == 'number' or t == 'boolean' then
    return t, tostring(v)
  elseif t == 'function' then
    local info = debug.getinfo(v, 'S')
    return 'function', info.what == 'Lua' and (info.short_src .. ':' .. info.linedefined) or 'builtin'
  end
  return t, ''
end

-- The user's globals: those not there when the prompt started (or, outside the prompt,
-- not part of Lua or flare), in name order.
function M.user_globals()
  local baseline = require('flare.repl').baseline
  local names = {}
  local loaded = {}
  for _, m in pairs(package.loaded) do loaded[m] = true end
  for k, v in pairs(_G) do
    if type(k) == 'string' and not standard_globals[k] and not (baseline and baseline[k])
       and not (baseline == nil and loaded[v]) then
      names[#names + 1] = k
    end
  end
  table.sort(names)
  return names
end

function M.who()
  local names = M.user_globals()
  if #names == 0 then
    print('no user globals yet')
    return
  end
  local rows, width, twidth = {}, 4, 4
  local total = 0
  local f = flare()
  for _, k in ipairs(names) do
    local v = rawget(_G, k)
    local ty, size = M.describe(v)
    if f.is_tensor(v) then total = total + v:nbytes() end
    rows[#rows + 1] = { k, ty, size }
    width = math.max(width, #k)
    twidth = math.max(twidth, #ty)
  end
  local fmt = '%-' .. width .. 's  %-' .. twidth .. 's  %s'
  print(paint('note', string.format(fmt, 'name', 'type', 'size')))
  for _, r in ipairs(rows) do print(string.format(fmt, r[1], r[2], r[3])) end
  if total > 0 then
    print(paint('note', 'tensors: ' .. bytes_text(total) .. ' (views count their own elements; '
      .. bytes_text(f.bytes_allocated()) .. ' of tensor data allocated in all)'))
  end
end

return M
