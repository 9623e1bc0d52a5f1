//! Loading and saving weights as safetensors. A whole file is planned before any variable is
//! written, so a file that does not fit leaves the model untouched and the error lists every
//! problem at once.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors};
use tch::nn::VarStore;
use tch::{Kind, Tensor};

use crate::error::{ModelError, ShapeMismatch, WeightMismatch};
use crate::naming::{Mapped, is_head_var, map_key};

pub use crate::naming::WeightNaming;

/// What a load did. Names are model variable names (relative to the load prefix) except
/// `unexpected` and `skipped`, which are file keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub loaded: Vec<String>,
    /// Variables the naming should have provided (non-strict loads only; strict ones fail).
    pub missing: Vec<String>,
    /// File tensors that map to no variable (non-strict loads only).
    pub unexpected: Vec<String>,
    /// File tensors deliberately not loaded, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Head variables that a trunk-only naming leaves as initialised.
    pub not_covered: Vec<String>,
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::U8 => Kind::Uint8,
        _ => return None,
    })
}

fn is_float(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
    )
}

/// Loads `path` into every variable of `vs`; see [`load_safetensors_under`].
pub fn load_safetensors(
    vs: &mut VarStore,
    path: &Path,
    naming: WeightNaming,
    strict: bool,
) -> Result<LoadReport, ModelError> {
    load_safetensors_under(vs, "", path, naming, strict)
}

/// Loads `path` into the variables of `vs` under `prefix` (the path a [`crate::SegNet`] was
/// built on, "" for the root), leaving other variables alone.
///
/// Shape mismatches, tensors mapped twice and non-float data for float variables always fail.
/// With `strict`, so do variables the file should provide but lacks and file tensors that
/// fit nowhere; trunk-only namings (torchvision, FDA's init) are not expected to provide
/// the classifier head. Values are converted to each variable's kind and device.
pub fn load_safetensors_under(
    vs: &mut VarStore,
    prefix: &str,
    path: &Path,
    naming: WeightNaming,
    strict: bool,
) -> Result<LoadReport, ModelError> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_owned(),
        source,
    })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| ModelError::SafeTensors {
        path: path.to_owned(),
        message: format!("{e:?}"),
    })?;
    let dotted = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}.")
    };
    let vars: BTreeMap<String, Tensor> = vs
        .variables()
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(&dotted)?.to_owned(), v)))
        .collect();

    let mut report = LoadReport::default();
    let mut plan: Vec<(String, String)> = Vec::new(); // (file key, var name)
    let mut sources: HashMap<String, Vec<String>> = HashMap::new();
    let mut mismatched = Vec::new();
    let mut keys: Vec<String> = st.names().into_iter().cloned().collect();
    keys.sort();
    for key in keys {
        let view = st.tensor(&key).map_err(|e| ModelError::SafeTensors {
            path: path.to_owned(),
            message: format!("{e:?}"),
        })?;
        let (name, reshape) = match map_key(naming, &key) {
            Mapped::Skip(why) => {
                report.skipped.push((key, why.to_owned()));
                continue;
            }
            Mapped::Var { name, reshape } => (name, reshape),
        };
        let Some(var) = vars.get(&name) else {
            match crate::enet::prelu_alias(&key) {
                Some(canonical) if vars.contains_key(&canonical) => {
                    report.skipped.push((
                        key,
                        format!("repeated entry of the shared PReLU {canonical}"),
                    ));
                }
                _ => report.unexpected.push(key),
            }
            continue;
        };
        let file_shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let model_shape = var.size();
        let fits = file_shape == model_shape
            || (reshape
                && file_shape.iter().product::<i64>() == model_shape.iter().product::<i64>());
        if !fits {
            mismatched.push(ShapeMismatch {
                key,
                var: name,
                file_shape,
                model_shape,
            });
            continue;
        }
        let kind_ok = kind_of(view.dtype()).is_some_and(|k| is_float(k) == is_float(var.kind()));
        if !kind_ok {
            return Err(ModelError::Dtype {
                path: path.to_owned(),
                key,
                dtype: format!("{:?}", view.dtype()),
                kind: format!("{:?}", var.kind()),
            });
        }
        sources.entry(name.clone()).or_default().push(key.clone());
        plan.push((key, name));
    }

    let mut duplicated: Vec<String> = sources
        .iter()
        .filter(|(_, keys)| keys.len() > 1)
        .map(|(name, keys)| format!("{name} <- {}", keys.join(", ")))
        .collect();
    duplicated.sort();
    for name in vars.keys() {
        if sources.contains_key(name) {
            continue;
        }
        if naming.trunk_only() && is_head_var(name) {
            report.not_covered.push(name.clone());
        } else {
            report.missing.push(name.clone());
        }
    }
    if !mismatched.is_empty()
        || !duplicated.is_empty()
        || (strict && !(report.missing.is_empty() && report.unexpected.is_empty()))
    {
        return Err(ModelError::Mismatch(Box::new(WeightMismatch {
            path: path.to_owned(),
            naming: naming.to_string(),
            missing: report.missing,
            unexpected: report.unexpected,
            mismatched,
            duplicated,
        })));
    }

    tch::no_grad(|| -> Result<(), ModelError> {
        for (key, name) in &plan {
            let view = st.tensor(key).map_err(|e| ModelError::SafeTensors {
                path: path.to_owned(),
                message: format!("{e:?}"),
            })?;
            let kind = kind_of(view.dtype()).expect("checked while planning");
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let mut var = vars[name].shallow_clone();
            let value = Tensor::f_from_data_size(view.data(), &shape, kind)?;
            var.f_copy_(&value.f_reshape(var.size())?)?;
        }
        Ok(())
    })?;
    report.loaded = plan.into_iter().map(|(_, name)| name).collect();
    report.loaded.sort();
    Ok(report)
}

/// Saves every variable of `vs` (trainable or not: BatchNorm statistics, fixed kernels) under
/// its own name, in float32 or the variable's kind; loads back with [`WeightNaming::Native`].
pub fn save_safetensors(vs: &VarStore, path: &Path) -> Result<(), ModelError> {
    save_safetensors_where(vs, path, &|_| true)
}

/// [`save_safetensors`] of the variables whose name satisfies `keep` (training-only parts such
/// as a contrastive projection head stay out of the model file).
pub fn save_safetensors_where(
    vs: &VarStore,
    path: &Path,
    keep: &dyn Fn(&str) -> bool,
) -> Result<(), ModelError> {
    let mut named: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(name, _)| keep(name))
        .map(|(name, t)| (name, t.detach().to_device(tch::Device::Cpu).contiguous()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    // Write beside and rename, so a crash never leaves a truncated checkpoint under the name.
    let tmp = path.with_extension("safetensors.partial");
    Tensor::write_safetensors(&named, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|source| ModelError::Io {
        path: path.to_owned(),
        source,
    })
}
