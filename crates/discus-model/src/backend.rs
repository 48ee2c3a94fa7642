//! Which burn backend runs the model: one model code, the device picks the backend.
//!
//! - [`Backend::Cpu`]: burn's pure-Rust `flex` backend with burn's default features (SIMD kernels
//!   and rayon threads). Always built; builds on a fresh machine and downloads nothing.
//! - [`Backend::Wgpu`]: burn's `wgpu` backend (WGSL shaders through Vulkan, Metal or DX12), behind
//!   this crate's `wgpu` cargo feature. It builds offline, and it runs correctly on Mesa's software
//!   Vulkan driver (lavapipe, Debian's `mesa-vulkan-drivers`), so the GPU code path can be tested
//!   on a CPU-only machine (slowly: about 7 training images/s there, against about 50 on `flex`).
//! - [`Backend::LibTorch`] and [`Backend::LibTorchCuda`]: burn's `tch` backend (PyTorch's C++
//!   library, libtorch) on the CPU or on the first CUDA GPU, behind this crate's `tch` cargo
//!   feature. It links the libtorch of an installed PyTorch (`LIBTORCH_USE_PYTORCH=1` at build
//!   time, that PyTorch's `lib` folder on `LD_LIBRARY_PATH` at run time), so it downloads nothing
//!   either; the same network runs on PyTorch's own CPU kernels (oneDNN) or on CUDA.
//!
//! A program picks the backend once with [`select`] (the `discus` binary's `--device`); the
//! library's [`crate::default_device`] then returns that backend's device. Without a selection it
//! is [`Backend::Cpu`].

use burn::tensor::Device;
use std::sync::Mutex;

/// A burn backend this build may run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// burn `flex` on the CPU (the default).
    Cpu,
    /// burn `wgpu` on the first GPU adapter wgpu finds (a software Vulkan driver counts).
    Wgpu,
    /// burn `tch` (libtorch) on the CPU.
    LibTorch,
    /// burn `tch` (libtorch) on CUDA device 0.
    LibTorchCuda,
}

/// Why a backend cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// No backend has that name.
    #[error("unknown device {0:?}: expected cpu, wgpu, libtorch or libtorch-cuda")]
    Unknown(String),
    /// The backend exists but this binary was built without it.
    #[error(
        "device {name} is not built into this discus: rebuild with `--features {feature}` \
         (e.g. `cargo build --release -p discus-cli --features {feature}`)"
    )]
    NotBuilt {
        /// The backend's name.
        name: &'static str,
        /// The cargo feature that builds it.
        feature: &'static str,
    },
}

impl Backend {
    /// Every backend, built or not.
    pub const ALL: [Backend; 4] = [
        Backend::Cpu,
        Backend::Wgpu,
        Backend::LibTorch,
        Backend::LibTorchCuda,
    ];

    /// The name used on the command line and in model cards.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Wgpu => "wgpu",
            Backend::LibTorch => "libtorch",
            Backend::LibTorchCuda => "libtorch-cuda",
        }
    }

    /// Whether this build includes the backend.
    pub fn is_built(self) -> bool {
        match self {
            Backend::Cpu => true,
            Backend::Wgpu => cfg!(feature = "wgpu"),
            Backend::LibTorch | Backend::LibTorchCuda => cfg!(feature = "tch"),
        }
    }

    /// The backend's device, or why it is not available in this build.
    pub fn device(self) -> Result<Device, BackendError> {
        match self {
            Backend::Cpu => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Ok(Device::wgpu(Default::default())),
            #[cfg(not(feature = "wgpu"))]
            Backend::Wgpu => Err(BackendError::NotBuilt {
                name: "wgpu",
                feature: "wgpu",
            }),
            // burn 0.22 marks burn-tch deprecated in favour of its CubeCL backends; those that
            // reach a CPU or an NVIDIA GPU download LLVM at build time, and this one does not.
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            Backend::LibTorch => Ok(Device::libtorch()),
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            Backend::LibTorchCuda => Ok(Device::libtorch_cuda(0)),
            #[cfg(not(feature = "tch"))]
            Backend::LibTorch | Backend::LibTorchCuda => Err(BackendError::NotBuilt {
                name: self.name(),
                feature: "tch",
            }),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Backend {
    type Err = BackendError;

    fn from_str(s: &str) -> Result<Backend, BackendError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" | "flex" => Ok(Backend::Cpu),
            "wgpu" | "gpu" => Ok(Backend::Wgpu),
            "libtorch" | "tch" | "torch" => Ok(Backend::LibTorch),
            "libtorch-cuda" | "tch-cuda" => Ok(Backend::LibTorchCuda),
            _ => Err(BackendError::Unknown(s.to_string())),
        }
    }
}

static SELECTED: Mutex<Option<Backend>> = Mutex::new(None);

/// Selects the backend of this process (what [`crate::default_device`] returns from now on);
/// refuses a backend this build does not include.
pub fn select(backend: Backend) -> Result<(), BackendError> {
    backend.device()?;
    *SELECTED.lock().unwrap_or_else(|e| e.into_inner()) = Some(backend);
    Ok(())
}

/// The environment variable read when nothing was [`select`]ed (a [`Backend::name`]).
pub const DEVICE_ENV: &str = "DISCUS_DEVICE";

/// The selected backend: the one given to [`select`]; else `DISCUS_DEVICE` when it names a backend
/// this build includes (the `discus` binary rejects any other value with the reason); else
/// [`Backend::Cpu`].
pub fn selected() -> Backend {
    if let Some(b) = *SELECTED.lock().unwrap_or_else(|e| e.into_inner()) {
        return b;
    }
    std::env::var(DEVICE_ENV)
        .ok()
        .and_then(|v| v.parse::<Backend>().ok())
        .filter(|b| b.is_built())
        .unwrap_or(Backend::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unbuilt_backends_are_refused() {
        for b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>(), Ok(b));
        }
        assert_eq!("FLEX".parse::<Backend>(), Ok(Backend::Cpu));
        assert!(matches!(
            "cuda".parse::<Backend>(),
            Err(BackendError::Unknown(_))
        ));
        assert!(Backend::Cpu.device().is_ok());
        if !cfg!(feature = "wgpu") {
            let e = select(Backend::Wgpu).unwrap_err();
            assert!(e.to_string().contains("--features wgpu"), "{e}");
            assert_eq!(selected(), Backend::Cpu);
        }
        assert_eq!("TCH".parse::<Backend>(), Ok(Backend::LibTorch));
        if !cfg!(feature = "tch") {
            for b in [Backend::LibTorch, Backend::LibTorchCuda] {
                let e = select(b).unwrap_err();
                assert!(e.to_string().contains("--features tch"), "{e}");
                assert!(e.to_string().contains(b.name()), "{e}");
            }
            assert_eq!(selected(), Backend::Cpu);
        }
    }
}
