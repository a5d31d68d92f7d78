//! A plan node without inputs whose one partition is a stream opened when the plan runs: what the
//! `spans` scan's own readers are (point reads of stored blocks, blocks waiting for upload), so each
//! says only how to open its stream and how to show itself.
//!
//! May call: DataFusion's plan traits. Owns nothing else.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

/// Opens the node's stream with the running query's context (its memory pool, among others).
pub type Open = dyn Fn(Arc<TaskContext>) -> Result<SendableRecordBatchStream> + Send + Sync;

/// A one-partition leaf producing rows of `schema` from [`Open`], shown in plans as `shown`.
pub struct LeafExec {
    name: &'static str,
    shown: String,
    open: Arc<Open>,
    properties: Arc<PlanProperties>,
}

impl LeafExec {
    pub fn new(name: &'static str, shown: String, schema: SchemaRef, open: Arc<Open>) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self { name, shown, open, properties: Arc::new(properties) }
    }
}

impl fmt::Debug for LeafExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl DisplayAs for LeafExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl ExecutionPlan for LeafExec {
    fn name(&self) -> &str {
        self.name
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(format!("{} has no inputs", self.name)))
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!("{} has one partition, not {partition}", self.name)));
        }
        (self.open)(context)
    }
}
