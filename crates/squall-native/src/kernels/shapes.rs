//! Kernel geometry shared by the FFI layer and the kernels. Field meanings and the
//! output-size rules are those of engine/backends/backend.ts.

/// Fails with a message naming the field when it is out of range.
fn at_least(name: &str, value: usize, min: usize) -> Result<(), String> {
    if value < min {
        Err(format!("{name} must be >= {min}, got {value}"))
    } else {
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    pub batch: usize,
    pub in_c: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_c: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_h: usize,
    pub pad_w: usize,
    pub dilation_h: usize,
    pub dilation_w: usize,
    pub groups: usize,
}

impl Conv2dShape {
    pub fn validate(&self) -> Result<(), String> {
        at_least("batch", self.batch, 1)?;
        at_least("inC", self.in_c, 1)?;
        at_least("inH", self.in_h, 1)?;
        at_least("inW", self.in_w, 1)?;
        at_least("outC", self.out_c, 1)?;
        at_least("kH", self.k_h, 1)?;
        at_least("kW", self.k_w, 1)?;
        at_least("strideH", self.stride_h, 1)?;
        at_least("strideW", self.stride_w, 1)?;
        at_least("dilationH", self.dilation_h, 1)?;
        at_least("dilationW", self.dilation_w, 1)?;
        at_least("groups", self.groups, 1)?;
        if self.in_c % self.groups != 0 || self.out_c % self.groups != 0 {
            return Err(format!("groups ({}) must divide inC ({}) and outC ({})", self.groups, self.in_c, self.out_c));
        }
        if self.in_h + 2 * self.pad_h < self.dilation_h * (self.k_h - 1) + 1 {
            return Err(format!("kernel height {} (dilation {}) does not fit input height {} + 2 * padH {}",
                               self.k_h, self.dilation_h, self.in_h, self.pad_h));
        }
        if self.in_w + 2 * self.pad_w < self.dilation_w * (self.k_w - 1) + 1 {
            return Err(format!("kernel width {} (dilation {}) does not fit input width {} + 2 * padW {}",
                               self.k_w, self.dilation_w, self.in_w, self.pad_w));
        }
        Ok(())
    }
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.pad_h - self.dilation_h * (self.k_h - 1) - 1) / self.stride_h + 1
    }
    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.pad_w - self.dilation_w * (self.k_w - 1) - 1) / self.stride_w + 1
    }
    pub fn input_len(&self) -> usize {
        self.batch * self.in_c * self.in_h * self.in_w
    }
    pub fn weight_len(&self) -> usize {
        self.out_c * (self.in_c / self.groups) * self.k_h * self.k_w
    }
    pub fn output_len(&self) -> usize {
        self.batch * self.out_c * self.out_h() * self.out_w()
    }
}

/// Torch's pooling size rule: ceil mode drops a last window that starts in the padding.
pub fn pool_output_size(input: usize, kernel: usize, stride: usize, pad: usize, ceil_mode: bool) -> usize {
    let span = input + 2 * pad - kernel;
    let mut out = if ceil_mode { span.div_ceil(stride) } else { span / stride } + 1;
    if ceil_mode && (out - 1) * stride >= input + pad {
        out -= 1;
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dShape {
    pub batch: usize,
    pub channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_h: usize,
    pub pad_w: usize,
    pub ceil_mode: bool,
    pub count_include_pad: bool,
}

impl Pool2dShape {
    pub fn validate(&self) -> Result<(), String> {
        at_least("batch", self.batch, 1)?;
        at_least("channels", self.channels, 1)?;
        at_least("inH", self.in_h, 1)?;
        at_least("inW", self.in_w, 1)?;
        at_least("kH", self.k_h, 1)?;
        at_least("kW", self.k_w, 1)?;
        at_least("strideH", self.stride_h, 1)?;
        at_least("strideW", self.stride_w, 1)?;
        if 2 * self.pad_h > self.k_h || 2 * self.pad_w > self.k_w {
            return Err(format!("padding ({}, {}) must be at most half the kernel ({}, {})",
                               self.pad_h, self.pad_w, self.k_h, self.k_w));
        }
        if self.in_h + 2 * self.pad_h < self.k_h || self.in_w + 2 * self.pad_w < self.k_w {
            return Err(format!("kernel {}x{} does not fit padded input {}x{}", self.k_h, self.k_w,
                               self.in_h + 2 * self.pad_h, self.in_w + 2 * self.pad_w));
        }
        Ok(())
    }
    pub fn out_h(&self) -> usize {
        pool_output_size(self.in_h, self.k_h, self.stride_h, self.pad_h, self.ceil_mode)
    }
    pub fn out_w(&self) -> usize {
        pool_output_size(self.in_w, self.k_w, self.stride_w, self.pad_w, self.ceil_mode)
    }
    pub fn input_len(&self) -> usize {
        self.batch * self.channels * self.in_h * self.in_w
    }
    pub fn output_len(&self) -> usize {
        self.batch * self.channels * self.out_h() * self.out_w()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrnShape {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub size: usize,
    pub alpha: f32,
    pub beta: f32,
    pub k: f32,
}

impl LrnShape {
    pub fn validate(&self) -> Result<(), String> {
        at_least("batch", self.batch, 1)?;
        at_least("channels", self.channels, 1)?;
        at_least("height", self.height, 1)?;
        at_least("width", self.width, 1)?;
        at_least("size", self.size, 1)?;
        if self.size % 2 == 0 {
            return Err(format!("size must be odd, got {}", self.size));
        }
        if !(self.k > 0.0) || !self.alpha.is_finite() || !self.beta.is_finite() {
            return Err(format!("k must be > 0 and alpha, beta finite (k={}, alpha={}, beta={})", self.k, self.alpha, self.beta));
        }
        Ok(())
    }
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.height * self.width
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormShape {
    pub n: usize,
    pub c: usize,
    pub spatial: usize,
    pub eps: f32,
}

impl BatchNormShape {
    pub fn validate(&self) -> Result<(), String> {
        at_least("n", self.n, 1)?;
        at_least("c", self.c, 1)?;
        at_least("spatial", self.spatial, 1)?;
        if !(self.eps >= 0.0) {
            return Err(format!("eps must be >= 0, got {}", self.eps));
        }
        Ok(())
    }
    pub fn len(&self) -> usize {
        self.n * self.c * self.spatial
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdOptions {
    pub lr: f32,
    pub momentum: f32,
    pub dampening: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
    pub first_step: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamOptions {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub step: u32,
}
