//! A host GPU as experiments are given it.

/// One of the host's GPUs: how CUDA counts it, its device file, its name
/// that no renumbering changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGpu {
    /// Index (NVML's, in PCI bus order).
    pub index: u32,
    /// N of its device file `/dev/nvidiaN`.
    pub minor: u32,
    /// `GPU-…`, when known: what `CUDA_VISIBLE_DEVICES` names it by, since
    /// a program that may open only some device files numbers those from 0.
    pub uuid: Option<String>,
}

/// `CUDA_VISIBLE_DEVICES` for the `given` GPUs (indices) of `host`: their
/// UUIDs, which mean the same whichever device files the program may open;
/// for one without a UUID (a recording), its position among the given ones
/// where only their device files can be opened (`fenced`: they are then
/// numbered from 0 in bus order), else its index.
pub fn cuda_visible(host: &[HostGpu], given: &[u32], fenced: bool) -> String {
    let mut ordered: Vec<&HostGpu> = host.iter().filter(|g| given.contains(&g.index)).collect();
    ordered.sort_by_key(|g| g.index);
    given
        .iter()
        .map(|index| {
            let known = ordered.iter().position(|g| g.index == *index);
            match known.map(|at| (at, ordered[at])) {
                Some((
                    _,
                    HostGpu {
                        uuid: Some(uuid), ..
                    },
                )) => uuid.clone(),
                Some((at, _)) if fenced => at.to_string(),
                _ => index.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(index: u32, uuid: Option<&str>) -> HostGpu {
        HostGpu {
            index,
            minor: index,
            uuid: uuid.map(String::from),
        }
    }

    #[test]
    fn gpus_are_named_so_that_fencing_cannot_renumber_them() {
        let host = [
            gpu(0, Some("GPU-a")),
            gpu(1, None),
            gpu(2, None),
            gpu(3, Some("GPU-d")),
        ];
        assert_eq!(cuda_visible(&host, &[3, 1], true), "GPU-d,0");
        assert_eq!(cuda_visible(&host, &[2, 1], true), "1,0");
        assert_eq!(cuda_visible(&host, &[2, 1], false), "2,1");
        assert_eq!(cuda_visible(&host, &[], true), "");
        // An index the host does not list (any more) stays as it is.
        assert_eq!(cuda_visible(&host, &[7], true), "7");
    }
}
