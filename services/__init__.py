"""The retail platform's services and the kit they share."""
